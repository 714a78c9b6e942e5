-- Between the idle scenario's phases: the claims' dead rows vacuumed, the statistics fresh.
vacuum analyze chimpsync.sync_queue, chimpsync.accounts
