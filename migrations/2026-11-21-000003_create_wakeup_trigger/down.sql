drop trigger notifications_wake on notifications;
drop function herald_wake();
drop table herald_listeners;
