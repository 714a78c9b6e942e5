create trigger {{trigger}} after {{event}} on {{table}}
    referencing {{transition}} for each statement execute function chimpsync.{{function}}()
