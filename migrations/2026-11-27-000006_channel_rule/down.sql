alter table notifications drop constraint notifications_channel_valid;
alter table notifications add constraint notifications_channel_valid
    check (channel ~ '^[^[:space:][:cntrl:],*]{1,200}$') not valid;
