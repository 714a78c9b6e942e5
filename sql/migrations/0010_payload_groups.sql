-- chimpsync 0010: the payload may carry interest groups and marketing permissions.

comment on column chimpsync.sync_queue.payload is 'Snapshot of the mapped columns: {"merge_fields": {TAG: value}, "tags": {column: value}, "consent": bool}, and when mapped "interests": {category title: the interest named by the column, or {interest name: bool}} and "permissions": {permission text: bool}.';
