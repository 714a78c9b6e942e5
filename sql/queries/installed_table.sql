select source_table from chimpsync.installation
