"""What goes out about a process: its name and where files go, not its spec (formats and
SQL are the tenant's business information, shown on the portal page only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from doorvoer.processes.models import Process
from doorvoer.processes.service import spec_of


class ProcessOut(BaseModel):
    model_config = ConfigDict(title="Process")

    name: str
    folder: str = Field(description="The process's inbox folder")
    match: str = Field(description="The names it takes: a glob under the inbox, "
                                   "like orders/*.csv")
    version: int = Field(description="Goes up by one with every change of the spec")
    updated_at: datetime
    inbox: str = Field(description="Where files go over SFTP: /inbox/<folder>/")
    upload_url: str = Field(description="Where files go over HTTPS: PUT "
                                        "<upload_url><filename>")

    @classmethod
    def of(cls, p: Process) -> ProcessOut:
        return cls(name=p.name, folder=p.folder, match=spec_of(p).match, version=p.version,
                   updated_at=p.updated_at, inbox=f"/inbox/{p.folder}/",
                   upload_url=f"/api/v1/processes/{p.name}/files/")
