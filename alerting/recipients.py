"""The people alarms go to, resolved from the registry and the platform's operators.

A :class:`Person` has a stable key, written in the outbox with each notification (the
journal keeps keys, never phone numbers or robot URLs)::

    E001/principal              an enterprise's [contacts.<role>]
    grid/KS-03/officer/1        a grid's [[grids.officers]], 1-based, in file order
    grid/KS-03/regulator        a grid's [grids.regulator_contact]
    platform/operator/1         [[alerting.operators]]

Group robots belong to an organisation: the enterprise (``E001``), the grid
(``grid/KS-03``) or the platform (``platform``); a person is @mentioned in the group of
the organisation they belong to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hazwatch.models import Contact, Registry, Robots

ENTERPRISE_ROLES = ("principal", "technical", "operations", "duty")
PLATFORM = "platform"

_ROLE_NAMES = {
    "en": {
        "principal": "principal",
        "technical": "technical owner",
        "operations": "operations owner",
        "duty": "duty room",
        "grid_officer": "grid officer",
        "regulator": "regulator",
        "operators": "platform operator",
    },
    "zh-CN": {
        "principal": "主要负责人",
        "technical": "技术负责人",
        "operations": "操作负责人",
        "duty": "值班室",
        "grid_officer": "网格员",
        "regulator": "监管部门",
        "operators": "平台值班员",
    },
}


def role_name(role: str, language: str) -> str:
    return _ROLE_NAMES.get(language, _ROLE_NAMES["en"]).get(role, role)


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    role: str
    contact: Contact
    org: str
    """Whose group robots reach this person: an enterprise id, ``grid/<id>``, ``platform``."""

    def label(self, language: str) -> str:
        """``duty room (Duty room)`` — role and name, for messages and logs."""
        name = self.contact.name
        role = role_name(self.role, language)
        return f"{role} ({name})" if name else role

    def address(self, channel: str) -> str:
        """This person's address on a personal channel ('' when they have none)."""
        c = self.contact
        return {"email": c.email, "sms": c.phone, "dingtalk": c.dingtalk, "wecom": c.wecom}.get(
            channel, ""
        )


class Directory:
    """Who holds which role for an enterprise, and which robots reach them."""

    def __init__(
        self,
        registry: Registry,
        operators: Sequence[Contact] = (),
        platform_robots: Robots | None = None,
    ) -> None:
        self._registry = registry
        self._platform_robots = platform_robots or Robots()
        self._by_key: dict[str, Person] = {}
        self._operators = tuple(
            self._keep(Person(f"{PLATFORM}/operator/{n}", "operators", c, PLATFORM))
            for n, c in enumerate(operators, start=1)
        )
        for grid in registry.grids.values():
            org = f"grid/{grid.id}"
            for n, officer in enumerate(grid.officers, start=1):
                self._keep(Person(f"{org}/officer/{n}", "grid_officer", officer, org))
            if grid.regulator_contact != Contact() or grid.regulator:
                contact = grid.regulator_contact
                if not contact.name:
                    contact = contact.model_copy(update={"name": grid.regulator})
                self._keep(Person(f"{org}/regulator", "regulator", contact, org))
        for enterprise in registry.enterprises.values():
            for role, contact in enterprise.contacts.items():
                self._keep(Person(f"{enterprise.id}/{role}", role, contact, enterprise.id))

    def _keep(self, person: Person) -> Person:
        self._by_key[person.key] = person
        return person

    def person(self, key: str) -> Person | None:
        return self._by_key.get(key)

    def people(self, enterprise: str, roles: Iterable[str]) -> list[Person]:
        """The people holding ``roles`` for ``enterprise`` (``_system`` and unknown
        enterprises have only the platform's operators), each once, in role order."""
        found: dict[str, Person] = {}
        e = self._registry.enterprises.get(enterprise)
        grid = f"grid/{e.grid}" if e is not None else None
        for role in roles:
            if role == "operators":
                candidates: Iterable[Person] = self._operators
            elif e is None:
                continue
            elif role in ENTERPRISE_ROLES:
                person = self._by_key.get(f"{enterprise}/{role}")
                candidates = () if person is None else (person,)
            elif role == "grid_officer":
                candidates = [
                    p for p in self._by_key.values() if p.org == grid and p.role == "grid_officer"
                ]
            else:  # regulator
                person = self._by_key.get(f"{grid}/regulator")
                candidates = () if person is None else (person,)
            for person in candidates:
                found.setdefault(person.key, person)
        return list(found.values())

    def robots(self, org: str) -> Robots:
        if org == PLATFORM:
            return self._platform_robots
        if org.startswith("grid/"):
            grid = self._registry.grids.get(org.removeprefix("grid/"))
            return grid.robots if grid is not None else Robots()
        enterprise = self._registry.enterprises.get(org)
        return enterprise.robots if enterprise is not None else Robots()

    def robot_kinds(self) -> set[str]:
        """``dingtalk`` / ``wecom`` when at least one organisation has such a robot."""
        every = [self._platform_robots]
        every += [g.robots for g in self._registry.grids.values()]
        every += [e.robots for e in self._registry.enterprises.values()]
        kinds = set()
        for robots in every:
            if robots.dingtalk:
                kinds.add("dingtalk")
            if robots.wecom:
                kinds.add("wecom")
        return kinds
