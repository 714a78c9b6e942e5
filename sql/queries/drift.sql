-- Whether the source table still fits the mapping setup installed (null when it does), and the
-- changes the capture guard holds until setup is re-run (see chimpsync.drift_report).
select problem, held, held_for from chimpsync.drift_report()
