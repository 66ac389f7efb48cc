package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * A subscriber's last committed account: table 0 is [version, header] (no row: no account),
 * table 1 its sessions. One single-partition transaction, so the two never disagree.
 */
public class BalanceGet extends VoltProcedure {
    public final SQLStmt account = new SQLStmt("SELECT version, header FROM account WHERE msisdn = ?;");
    public final SQLStmt sessions = new SQLStmt("SELECT body FROM account_session WHERE msisdn = ?;");

    public VoltTable[] run(String msisdn) {
        voltQueueSQL(account, msisdn);
        voltQueueSQL(sessions, msisdn);
        return voltExecuteSQL(true);
    }
}
