"""The sequences that cross training and the registry, above both: train a ticker and apply the
gate's decision (``train``), where that training computes (``distributed``), an operator's
promote (``promote``) and the gate's audit over history (``audit``). Training never imports
the registry and the registry never imports training; what they share is ``stockcast.modeling``."""
