create trigger chimpsync_enqueue_row after insert or update or delete on {{table}}
    for each row execute function chimpsync.enqueue_row()
