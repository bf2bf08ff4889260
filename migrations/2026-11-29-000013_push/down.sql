drop table herald_push_scan;
drop table herald_push_queue;
drop table herald_push_subscriptions;
