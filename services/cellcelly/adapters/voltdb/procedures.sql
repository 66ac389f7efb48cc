-- Java procedures (procedures/*.java, loaded with @UpdateClasses before this file runs).
CREATE PROCEDURE PARTITION ON TABLE account COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceGet;
CREATE PROCEDURE PARTITION ON TABLE account COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceCommit;
CREATE PROCEDURE FROM CLASS cellcelly.voltdb.BalanceOutboxRead;
CREATE PROCEDURE FROM CLASS cellcelly.voltdb.BalanceOutboxAck;
-- the relay's path: one partition at a time (single-partition; the key from @GetPartitionKeys)
CREATE PROCEDURE PARTITION ON TABLE outbox COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceOutboxReadPart;
CREATE PROCEDURE PARTITION ON TABLE outbox COLUMN msisdn PARAMETER 0 FROM CLASS cellcelly.voltdb.BalanceOutboxAckPart;
