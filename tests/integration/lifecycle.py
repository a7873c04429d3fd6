"""The order life cycle written out independently of the SQL that enforces it,
shared by the schema and API tests."""

STATUSES = ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED"]
ALLOWED = {
    ("CREATED", "ACCEPTED"), ("ACCEPTED", "PREPARED"), ("PREPARED", "SHIPPED"), ("SHIPPED", "DELIVERED"),
    ("CREATED", "CANCELED"), ("ACCEPTED", "CANCELED"), ("PREPARED", "CANCELED"),
}
# Shortest legal path from CREATED to each state.
PATH_TO = {
    "CREATED": [], "ACCEPTED": ["ACCEPTED"], "PREPARED": ["ACCEPTED", "PREPARED"],
    "SHIPPED": ["ACCEPTED", "PREPARED", "SHIPPED"], "DELIVERED": ["ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"],
    "CANCELED": ["CANCELED"],
}
