"""Every table, imported in one place for migrations and `metadata.create_all` checks."""

from doorvoer.accounts.models import Account, AccountKey
from doorvoer.db import Base
from doorvoer.processes.models import Process
from doorvoer.secrets.models import Connection
from doorvoer.tenants.models import Tenant
from doorvoer.transfers.models import Delivery, Transfer
from doorvoer.vault.models import BlobKey

metadata = Base.metadata

__all__ = ["Account", "AccountKey", "BlobKey", "Connection", "Delivery", "Process", "Tenant",
           "Transfer", "metadata"]
