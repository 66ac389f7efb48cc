package cellcelly.voltdb;

import java.util.HashSet;
import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * What BalanceOutboxAck and BalanceOutboxAckPart share: deleting exactly the given outbox events
 * (uids[i], idxs[i]) - never "everything up to": events of other partitions have no common order
 * with these, so an unchecked range could take one nobody published. Not a procedure (no run, no CREATE
 * PROCEDURE); VoltDB takes the statements from this superclass, as they are public and final.
 *
 * The relay acknowledges what one read returned: in a partition, an unbroken run of the outbox in
 * (uid, idx) order. When every event between the smallest and the largest uid given is one of the
 * given, one range delete takes exactly those; otherwise (gaps, or events of other partitions in a
 * multi-partition call) one delete an event. One statement instead of one an event: the per-event
 * deletes cost the server ~12 us an event and held the partition for up to 12 ms (PROCEDUREPROFILE).
 */
public abstract class OutboxAckBase extends VoltProcedure {
    private static final int MAX_BATCH = 200; // VoltDB queues at most 200 statements per batch

    public final SQLStmt delete = new SQLStmt("DELETE FROM outbox WHERE uid = ? AND idx = ?;");
    public final SQLStmt inRange = new SQLStmt(
        "SELECT uid, idx FROM outbox WHERE uid >= ? AND uid <= ? ORDER BY uid, idx LIMIT ?;");
    public final SQLStmt deleteRange = new SQLStmt("DELETE FROM outbox WHERE uid >= ? AND uid <= ?;");

    /** Deletes the given events (those this procedure's partitions hold); how many were there. */
    protected long deleteEach(long[] uids, long[] idxs) {
        if (uids.length != idxs.length) {
            throw new VoltAbortException("uids and idxs differ in length");
        }
        if (uids.length == 0) {
            return 0;
        }
        long low = uids[0];
        long high = uids[0];
        HashSet<String> given = new HashSet<>(uids.length * 2);
        for (int i = 0; i < uids.length; i++) {
            low = Math.min(low, uids[i]);
            high = Math.max(high, uids[i]);
            given.add(uids[i] + ":" + idxs[i]);
        }
        // one row more than was given: then at least one in the range was not given
        voltQueueSQL(inRange, low, high, uids.length + 1);
        VoltTable present = voltExecuteSQL()[0];
        boolean onlyGiven = true;
        while (onlyGiven && present.advanceRow()) {
            onlyGiven = given.contains(present.getLong(0) + ":" + present.getLong(1));
        }
        if (onlyGiven) {
            voltQueueSQL(deleteRange, low, high);
            return voltExecuteSQL(true)[0].asScalarLong();
        }
        return deleteOneByOne(uids, idxs);
    }

    private long deleteOneByOne(long[] uids, long[] idxs) {
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
