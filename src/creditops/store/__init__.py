"""Durable records shared by serving, monitoring and retraining, in one database with one schema
(:mod:`.schema`, upgraded by Alembic migrations): the decision log (:mod:`.predlog`) with its
hash chains (:mod:`.chain`), signed checkpoints (:mod:`.checkpoints`), verification
(:mod:`.chain_audit`), retention (:mod:`.retention`) and the service role's rights
(:mod:`.grants`), the alerts and monitor runs (:mod:`.alerts`), the retraining audit
(:mod:`.audit`), and the locks that keep retrains and champion changes apart (:mod:`.locks`)."""

from creditops.store.predlog import PredictionLog, PredictionRecord

__all__ = ["PredictionLog", "PredictionRecord"]
