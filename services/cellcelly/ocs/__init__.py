"""The OCS service: the charging engine behind a JSON API modelled on 3GPP Nchf_ConvergedCharging."""
