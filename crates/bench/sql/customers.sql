-- The benchmark's customer table (benchmark code, not chimpsync runtime SQL): a pet business's
-- customers, like `chimpsync demo`, {{count}} rows. Every row has an address and passes the
-- mapping's filter; one in five has no consent (becomes an unsubscribed contact).
create table public.customers (
    id              bigint primary key,
    email           text not null,
    first_name      text not null,
    last_name       text not null,
    store           text,
    customer_type   text,
    consent_contact boolean not null default false,
    notes           text,
    deleted_at      timestamptz
);
insert into public.customers (id, email, first_name, last_name, store, customer_type, consent_contact, notes)
select g,
       'customer.' || g || '@' || (array['petmail.test','furmail.test','pawpost.test'])[1 + g % 3],
       (array['Ana','Bruno','Carla','Diogo','Eva','Filipe','Gita','Hugo','Ines','Joao'])[1 + g % 10],
       (array['Silva','Santos','Costa','Pereira','Lima','Sousa','Rocha','Dias'])[1 + (g / 10) % 8],
       (array['Lisbon','Porto','Braga','Faro'])[1 + g % 4],
       (array['dog owner','cat owner','groomer','breeder','vet clinic'])[1 + (g * 7) % 5],
       (g % 5) <> 0,
       'customer since ' || (2000 + g % 25)
from generate_series(1, {{count}}) g;
analyze public.customers;
