-- `setup --uninstall --worker-role NAME`: removes the worker's role. {{role}} is the quoted name.
-- Fails (and the uninstall with it) if the role still owns objects or holds privileges elsewhere.
drop role if exists {{role}}
