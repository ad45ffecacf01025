"""Durable records shared by serving, monitoring and retraining, in one database with one schema
(:mod:`.schema`, upgraded by Alembic migrations): the decision log (:mod:`.predlog`) with its
outcomes (:mod:`.outcomes`), its table for monitoring and exports (:mod:`.decision_table`),
its sealed personal data (:mod:`.pii`) and who read it (:mod:`.access_log`), its hash chains
(:mod:`.chain`), signed checkpoints (:mod:`.checkpoints`), verification
(:mod:`.chain_audit`), retention (:mod:`.retention`) and the service role's rights
(:mod:`.grants`), the API keys (:mod:`.keys`), the background jobs (:mod:`.jobs`), the
alerts and monitor runs (:mod:`.alerts`), the retraining audit (:mod:`.audit`), and the locks
that keep retrains and champion changes apart (:mod:`.locks`)."""

from creditops.store.predlog import PredictionLog, PredictionRecord

__all__ = ["PredictionLog", "PredictionRecord"]
