-- Each lock `setup` needs is waited for this long at most: a waiting ACCESS EXCLUSIVE request
-- (drop trigger) queues every later reader of the customer table behind it.
set local lock_timeout = '{{milliseconds}}ms'
