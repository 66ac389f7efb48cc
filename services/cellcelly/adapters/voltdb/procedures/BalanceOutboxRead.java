package cellcelly.voltdb;

import org.voltdb.VoltTable;

/**
 * Up to `limit` outbox events after (afterUid, afterIdx), oldest first (OutboxReadBase).
 * Multi-partition and read-only: one consistent view of every partition.
 */
public class BalanceOutboxRead extends OutboxReadBase {
    public VoltTable[] run(long afterUid, long afterIdx, long limit) {
        return readAfter(afterUid, afterIdx, limit);
    }
}
