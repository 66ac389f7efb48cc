"""How CellCelly is assembled and run: one module per deployable, each a `Service`.

    deploy/
      ocs.py        OCS: HTTP charging API + wire transport (for DGWs) + outbox relay
      dgw.py        DGW: Diameter Gy server + Gateway, charging through an OcsClient
      sf.py         SF: bus -> system of record (+ its /metrics when alone)
      mw.py         MW: self-care API and web UI over SelfCare
      notifier.py   notifier: bus -> SMS or e-mail, "told once" in the record
      sms.py        SMS gateway: SMPP client, KALAN
      ivr.py        IVR: SIP/UDP, balance spoken in Turkish
      embedded.py   `make run`: the deployables above on one loop, one Backends (by default the
                    DGW, the SF and an e-mailing notifier as child processes instead)
      child.py      a deployable as a child process of `cellcelly run` (`cellcelly <command>`)
      backends.py   Backends: the adapters chosen from Settings, each opened once, closed once
      service.py    Service (start/stop/wait/health), HTTP and worker services, run()

`cellcelly <service>` builds one deployable from (settings, backends, collaborators) and hands
it to `run()`, the only place signals are handled; `cellcelly run` hands it the embedded stack.
"""

from cellcelly.deploy.service import Health, Service, run

__all__ = ["Health", "Service", "run"]
