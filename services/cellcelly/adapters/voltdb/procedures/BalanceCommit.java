package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;

/**
 * One charging commit, atomically, in the subscriber's partition: the account header, the sessions
 * it changed or dropped, and its events for the outbox - or nothing, when the account is no longer
 * at the version the caller computed from (then it aborts with app status VERSION_CONFLICT and the
 * caller runs its pure function again on the new account).
 *
 * Every array starts with a placeholder element that is skipped: the Python client cannot send an
 * empty array (it writes no length for one), so a commit without sessions or events would be garbled.
 */
public class BalanceCommit extends VoltProcedure {
    public static final byte VERSION_CONFLICT = 1;
    public static final byte BAD_REQUEST = 2;
    private static final int MAX_BATCH = 200; // VoltDB runs at most 200 queued statements at once

    public final SQLStmt version = new SQLStmt("SELECT version FROM account WHERE msisdn = ?;");
    public final SQLStmt upsertAccount = new SQLStmt(
        "UPSERT INTO account (msisdn, version, header) VALUES (?, ?, ?);");
    public final SQLStmt upsertSession = new SQLStmt(
        "UPSERT INTO account_session (msisdn, session_id, body) VALUES (?, ?, ?);");
    public final SQLStmt deleteSession = new SQLStmt(
        "DELETE FROM account_session WHERE msisdn = ? AND session_id = ?;");
    public final SQLStmt insertEvent = new SQLStmt(
        "INSERT INTO outbox (msisdn, uid, idx, body) VALUES (?, ?, ?, ?);");

    private int queued;

    public long run(String msisdn, long expectedVersion, String header, String[] sessionIds,
                    String[] sessionBodies, String[] removedIds, String[] events) {
        if (sessionIds.length != sessionBodies.length) {
            setAppStatusCode(BAD_REQUEST);
            throw new VoltAbortException("session ids and bodies differ in length");
        }
        voltQueueSQL(version, msisdn);
        org.voltdb.VoltTable current = voltExecuteSQL()[0];
        long found = current.advanceRow() ? current.getLong(0) : 0L;
        if (found != expectedVersion) {
            setAppStatusCode(VERSION_CONFLICT);
            setAppStatusString("at version " + found + ", expected " + expectedVersion);
            throw new VoltAbortException("version conflict on " + msisdn);
        }
        long next = found + 1;
        queued = 0;
        queue(upsertAccount, msisdn, next, header);
        for (int i = 1; i < removedIds.length; i++) {
            queue(deleteSession, msisdn, removedIds[i]);
        }
        for (int i = 1; i < sessionIds.length; i++) {
            queue(upsertSession, msisdn, sessionIds[i], sessionBodies[i]);
        }
        // unique cluster-wide and increasing within this partition: the events' order key
        long uid = getUniqueId();
        for (int i = 1; i < events.length; i++) {
            queue(insertEvent, msisdn, uid, i - 1, events[i]);
        }
        voltExecuteSQL(true);
        return next;
    }

    private void queue(SQLStmt stmt, Object... args) {
        if (queued == MAX_BATCH) {
            voltExecuteSQL();
            queued = 0;
        }
        voltQueueSQL(stmt, args);
        queued++;
    }
}
