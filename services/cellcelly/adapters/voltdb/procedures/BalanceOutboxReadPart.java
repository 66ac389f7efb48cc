package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * BalanceOutboxRead within one partition (the one partitionKey hashes to): single-partition, so
 * it stops no other site, unlike the multi-partition read. Every subscriber's events live in one
 * partition, where uid grows in commit order: this is each subscriber's order.
 */
public class BalanceOutboxReadPart extends VoltProcedure {
    public final SQLStmt sameCommit = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid = ? AND idx > ? ORDER BY uid, idx LIMIT ?;");
    public final SQLStmt later = new SQLStmt(
        "SELECT uid, idx, body FROM outbox WHERE uid > ? ORDER BY uid, idx LIMIT ?;");

    public VoltTable[] run(String partitionKey, long afterUid, long afterIdx, long limit) {
        voltQueueSQL(sameCommit, afterUid, afterIdx, limit);
        voltQueueSQL(later, afterUid, limit);
        return voltExecuteSQL(true);
    }
}
