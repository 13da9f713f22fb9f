"""Where personal data may go without more: the EEA, and countries with an adequacy decision.

Taken from the European Commission's page "Adequacy decisions" as it stood on 2025-09-01
(https://commission.europa.eu/law/law-topic/data-protection/international-dimension-data-protection/adequacy-decisions_en).
Update ADEQUACY_AS_OF with the list when the Commission adopts or withdraws a decision.
"""

from __future__ import annotations

import datetime as dt

ADEQUACY_AS_OF = dt.date(2025, 9, 1)

EEA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    "IS", "LI", "NO",
})

# country -> the decision. The United States is adequate only for organisations certified
# under the EU-U.S. Data Privacy Framework (Decision (EU) 2023/1795); see US_DPF.
ADEQUATE: dict[str, str] = {
    "AD": "Andorra, Decision 2010/625/EU",
    "AR": "Argentina, Decision 2003/490/EC",
    "CA": "Canada (commercial organisations under PIPEDA), Decision 2002/2/EC",
    "FO": "Faroe Islands, Decision 2010/146/EU",
    "GG": "Guernsey, Decision 2003/821/EC",
    "IL": "Israel, Decision 2011/61/EU",
    "IM": "Isle of Man, Decision 2004/411/EC",
    "JP": "Japan, Decision (EU) 2019/419",
    "JE": "Jersey, Decision 2008/393/EC",
    "NZ": "New Zealand, Decision 2013/65/EU",
    "KR": "Republic of Korea, Decision (EU) 2022/254",
    "CH": "Switzerland, Decision 2000/518/EC",
    "GB": "United Kingdom, Decision (EU) 2021/1772, renewed in 2025",
    "UY": "Uruguay, Decision 2012/484/EU",
}
US_DPF = "United States (DPF-certified organisations), Decision (EU) 2023/1795"
PRIVACY_SHIELD_INVALID = dt.date(2020, 7, 16)  # CJEU C-311/18 (Schrems II)


def free_to_receive(country: str, dpf_certified: bool = False) -> bool:
    """True when a transfer to `country` needs no Art. 46 safeguard."""
    return country in EEA or country in ADEQUATE or (country == "US" and dpf_certified)
