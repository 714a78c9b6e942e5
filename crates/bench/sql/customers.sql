-- The benchmark's customers (benchmark code, not chimpsync runtime SQL): {{count}} rows of a pet
-- business, in the table of `sql/demo/customers.sql`. Every row has an address and passes the
-- mapping's filter; one in five has no consent (becomes an unsubscribed contact).
insert into public.customers (id, email, first_name, last_name, store, customer_type, consent_contact, notes,
                              pet_type, wants_news, wants_offers)
select g,
       'customer.' || g || '@' || (array['petmail.test','furmail.test','pawpost.test'])[1 + g % 3],
       (array['Ana','Bruno','Carla','Diogo','Eva','Filipe','Gita','Hugo','Ines','Joao'])[1 + g % 10],
       (array['Silva','Santos','Costa','Pereira','Lima','Sousa','Rocha','Dias'])[1 + (g / 10) % 8],
       (array['Lisbon','Porto','Braga','Faro'])[1 + g % 4],
       (array['dog owner','cat owner','groomer','breeder','vet clinic'])[1 + (g * 7) % 5],
       (g % 5) <> 0,
       'customer since ' || (2000 + g % 25),
       (array['Dog','Cat','Dog','Rabbit','Bird',null])[1 + (g * 3) % 6],
       g % 3 = 0,
       g % 4 = 1
from generate_series(1, {{count}}) g;
analyze public.customers;
