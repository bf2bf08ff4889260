-- Who is present on which channel (SPEC section 8), shared by every instance of the database.
-- A row per channel, user and holder, alive until `expires`: an instance holds a user there
-- while one of their streams with `presence=` is open on it, and pushes `expires` forward
-- every second; when the last stream closes it lets the row lapse after a grace (a reload, or
-- a hop to another instance, is no leave); an instance that dies stops pushing, and its rows
-- lapse by themselves. Polling clients share one holder, 0, each poll keeping them 30 s.
-- Present means: some row with `expires > now()`, by the database's clock, which every
-- instance reads alike.
create table herald_presence (
    channel text not null,
    user_id text not null,
    holder bigint not null,
    name text,
    -- Since when this holder has held the user there without a lapse.
    since timestamptz not null,
    expires timestamptz not null,
    primary key (channel, user_id, holder)
);

-- For sweeping rows that lapsed long ago.
create index herald_presence_expires on herald_presence (expires);
