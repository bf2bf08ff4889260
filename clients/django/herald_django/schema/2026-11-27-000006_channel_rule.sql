-- One rule for channel names, the same here and in herald (`FORBIDDEN` in src/channels.rs):
-- 1-200 characters, none of them Unicode White_Space or a control character, ',' or '*'.
-- The first rule said [:space:] and [:cntrl:], whose meaning follows the database's locale:
-- under a UTF-8 locale U+00A0 passed here but herald refused `?channels=` with it, so such
-- rows could never be read. The ranges are spelled out, so no locale changes them.
alter table notifications drop constraint notifications_channel_valid;
alter table notifications add constraint notifications_channel_valid
    check (channel ~ '^[^\u0001-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000,*]{1,200}$') not valid;

-- Rows the old rule let in stay (they are data, and deleting them is the owner's call);
-- when there are none, the constraint is validated like any other.
do $$
begin
    if not exists (select from notifications
                   where channel !~ '^[^\u0001-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000,*]{1,200}$') then
        alter table notifications validate constraint notifications_channel_valid;
    end if;
end;
$$;
