"""What the simulated 12Twenty serves: entities, their fields, types and list subsets.

This is the simulator's own description of "the API" (from the vendor article and
API-FACTS.md), deliberately independent of the extractor's schemas/ so that a mismatch
between what we declare and what the API sends is something the tests can catch.

Type grammar (shared with schemas/*.json):
- scalars: ``Byte``, ``Int16``, ``Int32``, ``Int64``, ``String``, ``Boolean``, ``DateTime``
- ``X[]``: a JSON array of X
- ``Lookup``: ``{"Id": int, "AttributeId": int, "Name": str}`` or null
- ``IdName``: ``{"Id": int, "Name": str}``
- ``IdObject``: ``{"Id": int}``
- ``CustomAttributes``: ``{"custom_attribute_<n>": str | null, ...}``
- a JSON object of field -> type: a nested object (struct)
- a one-element JSON array ``[T]``: an array of T (used for arrays of objects)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A field's type: a type name, or a nested object described field by field.
FieldType = str | dict[str, Any] | list[Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One property of an entity."""

    name: str
    type: FieldType
    in_list: bool  # carried by the list endpoint (the detail endpoint carries every field)


@dataclass(frozen=True, slots=True)
class Entity:
    """One list endpoint of the API."""

    name: str  # the path segment: /api/v2/{name}
    fields: tuple[Field, ...]
    id_base: int  # Ids are id_base + k * id_step: realistic, large, stable order
    id_step: int
    default_rows: int  # rows at --scale 1 (a mid-sized school)
    has_modify_date: bool  # ModifyFromDate/ModifyToDate filter this entity

    @property
    def list_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.in_list)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _fields(spec: str) -> tuple[Field, ...]:
    """Parse ``name:Type[:d]`` lines; ``:d`` marks a detail-only field."""
    out: list[Field] = []
    for raw in spec.split():
        parts = raw.split(":")
        name, type_ = parts[0], parts[1]
        detail_only = len(parts) > 2 and parts[2] == "d"
        out.append(Field(name, type_, not detail_only))
    return tuple(out)


_LOCATION: dict[str, Any] = {
    "AddressLine1": "String",
    "AddressLine2": "String",
    "ZipCode": "String",
    "CountryName": "String",
    "CityName": "String",
}
_ADDRESS: dict[str, Any] = {
    "AddressTypeId": "Int32",
    "Street1": "String",
    "Street2": "String",
    "City": "String",
    "State": "String",
    "PostalCode": "String",
    "Country": "String",
}

STUDENTS = Entity(
    name="students",
    fields=(
        *_fields(
            """
        Id:Int64 StudentId:String FirstName:String MiddleName:String LastName:String
        FullName:String PreferredName:String EmailAddress:String PreferredEmailAddress:String:d
        SsoId:String Gender:String:d Phone1:String:d Phone2:String:d IsEnrolled:Boolean
        IsAlumni:Boolean IsFerpa:Boolean:d IncludeInResumeBook:Boolean:d JoinDate:DateTime
        RoleId:Int32 HasPhoto:Boolean GraduationYearId:Int16 GraduationTerm:String
        GraduationClass:String Program:Lookup College:Lookup College2:Lookup:d
        DegreeLevel:Lookup Degree1:Lookup Degree2:Lookup:d Department1:Lookup
        UndergradMajor:Lookup:d UndergradMinor:Lookup:d Ethnicity1:Lookup:d
        CountryOfCitizenship:Lookup:d WorkAuthorization:Lookup:d
        OutcomeStatusInternship:Lookup:d OutcomeStatusPostGraduation:Lookup:d
        AssignedAdvisor:Lookup StudentGroups:IdName[] StudentClubs:IdName[]:d
        CustomAttributeValues:CustomAttributes:d CreateDate:DateTime ModifyDate:DateTime
        """
        ),
        Field("Addresses", [_ADDRESS], False),
    ),
    id_base=10_000_000,
    id_step=7,
    default_rows=12_000,
    has_modify_date=True,
)

COMPANIES = Entity(
    name="companies",
    fields=_fields(
        """
        Id:Int64 Name:String IsAdminApproved:Boolean Industries:IdName[]
        NumberOfEmployeesName:String Website:String AccountManagerName:String
        OutreachLeadName:String:d OutreachPriorityName:String:d Description:String:d
        CreateDate:DateTime ModifyDate:DateTime ParentId:Int64 ParentCompanyName:String
        CustomAttributeValues:CustomAttributes:d
        """
    ),
    id_base=50_000_000,
    id_step=13,
    default_rows=6_000,
    has_modify_date=True,
)

CONTACTS = Entity(
    name="contacts",
    fields=(
        *_fields(
            """
        Id:Int64 FirstName:String LastName:String PrefixName:String:d PreferredName:String
        CompanyId:Int64 CompanyName:String IsAdminApproved:Boolean OfficePhone:String
        CellPhone:String:d EmailAddress:String AlternateEmailAddress:String:d JobTitle:String
        IsPrimary:Boolean LinkedInProfileUrl:String:d IsAlumni:Boolean
        AlumniGraduationYear:Int16 CreateDate:DateTime ModifyDate:DateTime
        """
        ),
        Field("Location", _LOCATION, True),
    ),
    id_base=60_000_000,
    id_step=11,
    default_rows=9_000,
    has_modify_date=True,
)

NOTES = Entity(
    name="notes",
    fields=_fields(
        """
        Id:Int64 PrimaryEntityTypeID:Int32 PrimaryEntityID:Int64 AssociatedEntityType1Id:Int32
        AssociatedEntity1Id:Int64 Text:String Date:DateTime OwnerId:Int64 OwnerName:String
        FileId:Int64 FileName:String VisibilityId:Int32 CampaignIds:Int64[] ModifyDate:DateTime
        """
    ),
    id_base=10_607_302_981_934,
    id_step=3,
    default_rows=15_000,
    has_modify_date=True,
)

EVENTS = Entity(
    name="events",
    fields=_fields(
        """
        Id:Int64 Name:String CompanyId:Int64 EventTypeName:String StartDate:DateTime
        EndDate:DateTime Location:String Description:String:d IsPublished:Boolean
        Capacity:Int32 RsvpCount:Int32 EventType:Lookup:d CreateDate:DateTime
        ModifyDate:DateTime
        """
    ),
    id_base=70_000_000,
    id_step=17,
    default_rows=2_500,
    has_modify_date=True,
)

JOB_POSTINGS = Entity(
    name="job-postings",
    fields=_fields(
        """
        Id:Int64 CompanyId:Int64 CompanyName:String JobTitle:String OciId:Int64
        InterviewDates:DateTime[] PostedDate:DateTime ExpirationDate:DateTime
        JobFunction:Lookup Industry:Lookup:d Description:String:d SalaryMin:Int32:d
        SalaryMax:Int32:d IsRemote:Boolean CustomAttributeValues:CustomAttributes:d
        CreateDate:DateTime ModifyDate:DateTime
        """
    ),
    id_base=80_000_000,
    id_step=19,
    default_rows=5_000,
    has_modify_date=True,
)

LOOKUPS = Entity(
    name="lookups",
    fields=_fields("Id:Int64 Name:String AttributeId:Int64 IsActive:Boolean"),
    id_base=200,
    id_step=1,
    default_rows=120,
    has_modify_date=False,
)

ATTRIBUTES = Entity(
    name="attributes",
    fields=_fields(
        """
        Id:Int64 ShortDisplayName:String LongDisplayName:String EntityTypeId:Int32
        DataType:String IsCustom:Boolean LookupId:Int64
        """
    ),
    id_base=10_888_805_132_000,  # custom attributes' Ids: CustomAttributeValues keys
    id_step=1,
    default_rows=400,
    has_modify_date=False,
)

# Entities with a paged list endpoint, in the order a dump walks them.
LIST_ENTITIES: tuple[Entity, ...] = (
    STUDENTS,
    COMPANIES,
    CONTACTS,
    NOTES,
    EVENTS,
    JOB_POSTINGS,
    LOOKUPS,
    ATTRIBUTES,
)
BY_NAME: dict[str, Entity] = {e.name: e for e in LIST_ENTITIES}

# /api/v2/lookups/{id}/options returns a bare array of these.
OPTION_FIELDS = _fields("Id:Int64 Name:String")
