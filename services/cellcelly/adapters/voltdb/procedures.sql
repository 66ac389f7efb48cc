-- Java procedures (procedures/*.java, loaded with @UpdateClasses before this file runs).
CREATE PROCEDURE PARTITION ON TABLE account COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceGet;
CREATE PROCEDURE PARTITION ON TABLE account COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceCommit;
CREATE PROCEDURE FROM CLASS cellcelly.voltdb.BalanceOutboxRead;
CREATE PROCEDURE FROM CLASS cellcelly.voltdb.BalanceOutboxAck;
