-- Who is present on which channel (SPEC section 8), shared by every instance of the database.
--
-- A row per channel, user and holder: an instance holds a user there while one of their
-- streams with `presence=` is open on it (`until` null), and when the last one closes sets
-- `until` a grace ahead (a reload, or a hop to another instance, is no leave). Each instance
-- keeps its own row in herald_presence_holders alive, pushing `expires` ahead every second:
-- one row per instance, however many users it holds. An instance that dies stops, and every
-- row it held lapses with it. Polling clients share holder 0, which never expires; each poll
-- sets its row's `until` 30 s ahead. Present means: a row whose holder is alive and whose
-- `until` is null or ahead, by the database's clock, which every instance reads alike.
create table herald_presence_holders (
    holder bigint primary key,
    expires timestamptz not null
);
insert into herald_presence_holders (holder, expires) values (0, 'infinity');

create table herald_presence (
    channel text not null,
    user_id text not null,
    holder bigint not null,
    name text,
    -- Since when this holder has held the user there without a lapse.
    since timestamptz not null,
    until timestamptz,
    primary key (channel, user_id, holder)
);

-- Each tick looks for rows that started or lapsed since the last: by time, not by channel.
create index herald_presence_since on herald_presence (since);
create index herald_presence_until on herald_presence (until);
create index herald_presence_holder on herald_presence (holder);
