create trigger chimpsync_enqueue_truncate after truncate on {{table}}
    for each statement execute function chimpsync.enqueue_truncate()
