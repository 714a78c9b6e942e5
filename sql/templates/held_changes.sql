insert into chimpsync.drifted_changes (operation, side, row_data, problem)
select tg_op, s.side, s.row_data, drift
from ({{rows}}) s
