package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * Deletes exactly the given outbox events (uids[i], idxs[i]) - never "everything up to": events of
 * other partitions have no common order with these, so a range could take one nobody published.
 * Multi-partition (the events belong to many subscribers); one call per relay batch.
 */
public class BalanceOutboxAck extends VoltProcedure {
    private static final int MAX_BATCH = 200;

    public final SQLStmt delete = new SQLStmt("DELETE FROM outbox WHERE uid = ? AND idx = ?;");

    public long run(long[] uids, long[] idxs) {
        if (uids.length != idxs.length) {
            throw new VoltAbortException("uids and idxs differ in length");
        }
        long deleted = 0;
        int queued = 0;
        for (int i = 0; i < uids.length; i++) {
            voltQueueSQL(delete, uids[i], idxs[i]);
            queued++;
            boolean last = i == uids.length - 1;
            if (queued == MAX_BATCH || last) {
                for (VoltTable t : voltExecuteSQL(last)) {
                    deleted += t.asScalarLong();
                }
                queued = 0;
            }
        }
        return deleted;
    }
}
