-- What the drift checks compare the source table with: $1 the table's quoted name, $2 the columns
-- the mapping reads (see chimpsync.installation.expected_columns). Reads the catalog only.
update chimpsync.installation
set source_oid = to_regclass($1)::oid, expected_columns = $2
where source_oid is distinct from to_regclass($1)::oid or expected_columns is distinct from $2
