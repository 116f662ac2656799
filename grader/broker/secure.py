"""A local broker secured like an instructor's shared cluster: SASL/SCRAM-SHA-512 on the client and
inter-broker listeners, the KRaft StandardAuthorizer, and a grading principal that prefixed ACLs allow
only its own names (topics, groups, transactional ids).

    start_local(progress, secure=SaslSetup(prefix="grading."))   # grader/broker/local.py
    setup.write_client_config(path)                              # what `grade --client-config` reads

The SCRAM users (a super user the broker itself uses, and the grading principal) are written into
the metadata log at format time (`kafka-storage format --add-scram`, KIP-900): SCRAM needs them before
the broker can authenticate anyone. The controller listener uses SASL/PLAIN with the super user's
credentials (KRaft controllers cannot use SCRAM, which lives in the metadata they serve).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

MECHANISM = "SCRAM-SHA-512"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class SaslSetup:
    prefix: str = "grading."
    grader_user: str = "grader"
    admin_user: str = "broker-admin"
    grader_password: str = field(default_factory=lambda: secrets.token_hex(12))
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))

    # ---- the broker ----------------------------------------------------------------------
    def server_properties(self, text: str) -> str:
        """The plain template's listeners made SASL (the client listener renamed CLIENT), plus the authorizer."""
        out = []
        for line in text.splitlines():
            if line.startswith(("listeners=", "advertised.listeners=")):
                line = line.replace("PLAINTEXT://", "CLIENT://")
            elif line.startswith("listener.security.protocol.map="):
                line = "listener.security.protocol.map=" + ",".join(
                    f"{name}:SASL_PLAINTEXT" for name in ("CONTROLLER", "CLIENT", "BROKER"))
            out.append(line)
        admin = f'username="{self.admin_user}" password="{self.admin_password}"'
        out += [
            "",
            "# ---- secured like a shared cluster (grader/broker/secure.py) ----",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.broker.{MECHANISM.lower()}.sasl.jaas.config={SCRAM_MODULE} required {admin};",
            f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config={SCRAM_MODULE} required;",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={PLAIN_MODULE} required {admin} "
            f'user_{self.admin_user}="{self.admin_password}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{self.admin_user}",
            "allow.everyone.if.no.acl.found=false",
        ]
        return "\n".join(out) + "\n"

    def format_args(self) -> list[str]:
        return [arg for user, password in ((self.admin_user, self.admin_password),
                                           (self.grader_user, self.grader_password))
                for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={password}]")]

    # ---- clients ---------------------------------------------------------------------------
    def admin_properties(self) -> dict[str, str]:
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": MECHANISM,
                "sasl.username": self.admin_user, "sasl.password": self.admin_password}

    def grader_properties(self) -> dict[str, str]:
        return {**self.admin_properties(), "sasl.username": self.grader_user, "sasl.password": self.grader_password}

    def write_client_config(self, path: Path, bootstrap_servers: str = "") -> Path:
        """The grading principal's client config, as an instructor would write it for `--client-config`."""
        lines = ["# The grading principal of a local SASL/SCRAM broker (grader/broker/secure.py)."]
        if bootstrap_servers:
            lines.append(f"bootstrap.servers={bootstrap_servers}")
        lines += [f"{k}={v}" for k, v in self.grader_properties().items()]
        lines.append(f"kafka-katas.prefix={self.prefix}")
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    # ---- ACLs ------------------------------------------------------------------------------
    def grant(self, bootstrap_servers: str) -> None:
        """The grading principal may do anything to names under its prefix, and nothing else but
        idempotent writes (a cluster-wide permission librdkafka's idempotent producer asks for) and
        reading __transaction_state: kata-09's check reads the transaction timeout the coordinator
        recorded there (without it, that one comparison finds no record and is skipped)."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            AdminClient,
            ResourcePatternType,
            ResourceType,
        )

        principal = f"User:{self.grader_user}"
        bindings = [AclBinding(kind, self.prefix, ResourcePatternType.PREFIXED, principal, "*", AclOperation.ALL,
                               AclPermissionType.ALLOW)
                    for kind in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)]
        bindings.append(AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, principal, "*",
                                   AclOperation.IDEMPOTENT_WRITE, AclPermissionType.ALLOW))
        bindings += [AclBinding(ResourceType.TOPIC, "__transaction_state", ResourcePatternType.LITERAL, principal, "*",
                                operation, AclPermissionType.ALLOW)
                     for operation in (AclOperation.DESCRIBE, AclOperation.READ)]
        admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, **self.admin_properties()})
        for future in admin.create_acls(bindings, request_timeout=30).values():
            future.result(timeout=30)

