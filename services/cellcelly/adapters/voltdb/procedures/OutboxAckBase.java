package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * What BalanceOutboxAck and BalanceOutboxAckPart share: deleting exactly the given outbox events
 * (uids[i], idxs[i]) - never "everything up to": events of other partitions have no common order
 * with these, so a range could take one nobody published. Not a procedure (no run, no CREATE
 * PROCEDURE); VoltDB takes the statement from this superclass, as it is public and final.
 */
public abstract class OutboxAckBase extends VoltProcedure {
    private static final int MAX_BATCH = 200; // VoltDB queues at most 200 statements per batch

    public final SQLStmt delete = new SQLStmt("DELETE FROM outbox WHERE uid = ? AND idx = ?;");

    /** Deletes the given events (those this procedure's partitions hold); how many were there. */
    protected long deleteEach(long[] uids, long[] idxs) {
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
