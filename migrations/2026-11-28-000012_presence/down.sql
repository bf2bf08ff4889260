drop table herald_presence;
drop table herald_presence_holders;
