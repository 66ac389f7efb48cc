package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * Up to `limit` outbox events after (afterUid, afterIdx), oldest first: table 0 the rest of the
 * commit afterUid, table 1 the commits after it. Multi-partition and read-only: one consistent
 * view of every partition.
 */
public class BalanceOutboxRead extends VoltProcedure {
    public final SQLStmt sameCommit = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid = ? AND idx > ? ORDER BY uid, idx LIMIT ?;");
    public final SQLStmt later = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid > ? ORDER BY uid, idx LIMIT ?;");

    public VoltTable[] run(long afterUid, long afterIdx, long limit) {
        voltQueueSQL(sameCommit, afterUid, afterIdx, limit);
        voltQueueSQL(later, afterUid, limit);
        return voltExecuteSQL(true);
    }
}
