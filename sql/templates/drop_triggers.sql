drop trigger if exists chimpsync_enqueue_insert on {{table}};
drop trigger if exists chimpsync_enqueue_update on {{table}};
drop trigger if exists chimpsync_enqueue_delete on {{table}};
drop trigger if exists chimpsync_enqueue_row on {{table}};
drop trigger if exists chimpsync_enqueue_truncate on {{table}}
