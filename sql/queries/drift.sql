-- Whether the source table still fits the mapping setup installed (null when it does), and the
-- changes the capture guard holds until setup is re-run.
select (select chimpsync.mapping_drift(i.source_oid, i.expected_columns, i.source_table)
        from chimpsync.installation i where i.source_oid is not null) as problem,
       (select count(*) from chimpsync.drifted_changes) as held,
       (select problem from chimpsync.drifted_changes order by id desc limit 1) as held_for
