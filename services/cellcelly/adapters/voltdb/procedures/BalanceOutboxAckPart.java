package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * BalanceOutboxAck within one partition (the one partitionKey hashes to): deletes exactly the given
 * events that live there; events of other partitions are not seen. Single-partition: it stops no
 * other site, unlike the multi-partition acknowledgement.
 */
public class BalanceOutboxAckPart extends VoltProcedure {
    private static final int MAX_BATCH = 200;

    public final SQLStmt delete = new SQLStmt("DELETE FROM outbox WHERE uid = ? AND idx = ?;");

    public long run(String partitionKey, long[] uids, long[] idxs) {
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
