"""The CellCelly operator: one CellCellyStack resource in, the whole stack on Kubernetes out."""
