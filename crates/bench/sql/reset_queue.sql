-- Between measurements: an empty queue and no record of synced contacts.
truncate chimpsync.sync_queue, chimpsync.synced_contacts
