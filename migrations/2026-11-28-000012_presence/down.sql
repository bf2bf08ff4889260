drop table herald_presence;
