-- The mapping changed where the triggers do not depend on it: record it, leave the triggers.
update chimpsync.installation set mapping = $1
