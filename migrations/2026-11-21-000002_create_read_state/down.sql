drop table notification_reads;
drop table notification_read_marks;
