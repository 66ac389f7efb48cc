package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * What BalanceOutboxRead and BalanceOutboxReadPart share: the page of outbox events after a
 * position. Not a procedure (no run, no CREATE PROCEDURE); VoltDB takes the statements from this
 * superclass, as they are public and final. Only reads here: a write would make both read-write.
 */
public abstract class OutboxReadBase extends VoltProcedure {
    public final SQLStmt sameCommit = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid = ? AND idx > ? ORDER BY uid, idx LIMIT ?;");
    public final SQLStmt later = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid > ? ORDER BY uid, idx LIMIT ?;");

    /**
     * Up to `limit` events after (afterUid, afterIdx), oldest first, of the partitions this
     * procedure sees: table 0 the rest of the commit afterUid, table 1 the commits after it.
     */
    protected VoltTable[] readAfter(long afterUid, long afterIdx, long limit) {
        voltQueueSQL(sameCommit, afterUid, afterIdx, limit);
        voltQueueSQL(later, afterUid, limit);
        return voltExecuteSQL(true);
    }
}
