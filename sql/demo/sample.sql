-- The demo's customers, {{count}} of them: every row has an address and passes the mapping's
-- filter; one in five has no consent (becomes an unsubscribed contact); most have a pet type.
insert into public.customers (id, email, first_name, last_name, store, customer_type, consent_contact, notes,
                              pet_type, wants_news, wants_offers)
select g,
       lower(f.name || '.' || l.name || g || '@' || (array['petmail.test','furmail.test','pawpost.test'])[1 + g % 3]),
       f.name, l.name,
       (array['Lisbon','Porto','Braga','Faro'])[1 + g % 4],
       (array['dog owner','cat owner','groomer','breeder','vet clinic'])[1 + (g * 7) % 5],
       (g % 5) <> 0,
       'pet: ' || (array['Rex','Luna','Milo','Bela','Tobi','Nina'])[1 + g % 6],
       (array['Dog','Cat','Dog','Rabbit','Bird',null])[1 + (g * 3) % 6],
       g % 3 = 0,
       g % 4 = 1
from generate_series(1, {{count}}) g
cross join lateral (select (array['Ana','Bruno','Carla','Diogo','Eva','Filipe','Gita','Hugo','Ines','Joao'])[1 + g % 10] as name) f
cross join lateral (select (array['Silva','Santos','Costa','Pereira','Lima','Sousa','Rocha','Dias'])[1 + (g / 10) % 8] as name) l;
