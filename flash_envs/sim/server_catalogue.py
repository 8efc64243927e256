"""Built-in server catalogue: 16 SPECpower_ssj2008 results and two measured DVFS tables, typed in as figures.

The environment runs with no external file. Every figure below is copied from a public source:

* **Server power curves**: SPECpower_ssj2008 results (spec.org/power_ssj2008), as merged in the shared dataset
  ``specpower_ssj2008/specpower_curves.csv`` (see its SOURCE.md): ``server_id``, vendor, system, submission date, CPU,
  nominal MHz, chips, cores, ssj_ops at 100% load and the watts at active idle and 10%..100% load. Cite
  SPECpower_ssj2008 and the result. The 16 servers span 2009-2021, 8 to 80 cores, 17 W to 468 W at active idle and
  57 W to 852 W at full load, and concave, linear and convex curves.
* **Power vs frequency**: idle and full-load watts at five P-states of two hosts measured by Guerout et al., "Energy-
  aware simulation with DVFS", SIMPAT 39 (2013) (CloudSim-DVFS ``PowerModelSpecPower_BAZAR`` / ``_REIMS``; shared as
  ``dvfs_cloudsim_grid5000/dvfs_power_tables.csv``). The Reims host (a Grid'5000 server) sets the default
  :class:`~flash_envs.sim.power.FrequencyScaling` of every catalogue server; the Bazar desktop (only one core of four
  changed frequency) is kept for comparison. Two caveats: the Reims watts are measured but its frequency levels are
  not given by the source, and are taken to be CloudSim-DVFS's five (those of the Bazar CPU's GHz steps); and one
  host's fit applied to servers of other CPU generations (2009-2021) is an extrapolation. ``flash power-fit --dvfs``
  shows how loosely the table pins the fit's voltage slope.

:data:`TRAIN_RECORDS` and :data:`TEST_RECORDS` are disjoint: the power-management task family trains on the first and
holds out the second, so test tasks run on server types never seen in training.
"""

from __future__ import annotations

from functools import lru_cache

from flash_envs.data.specpower import DVFSTable, SpecPowerRecord
from flash_envs.sim.power import DEFAULT_FREQ_LEVELS, FrequencyScaling, ServerType


def _record(server_id: str, vendor: str, system: str, date: str, cpu: str, mhz: float, chips: int, cores: int,
            ssj_ops: float, watts: tuple[float, ...]) -> SpecPowerRecord:
    return SpecPowerRecord(server_id, cores, watts, vendor, system, date, cpu, float(mhz), chips, float(ssj_ops))


TRAIN_RECORDS: tuple[SpecPowerRecord, ...] = (
    _record("0", "ASUSTeK Computer Inc.", "RS500A-E10-PS4", "Jan 21, 2020", "EPYC 7742",
          2250, 1, 64, 6064779, (51.4, 100.0, 109.0, 120.0, 131.0, 149.0, 161.0, 175.0, 189.0, 201.0, 214.0)),
    _record("20", "Acer Incorporated", "Acer AR585 F1", "Jun 21, 2012", "AMD Opteron 6278",
          2400, 4, 64, 2296333, (176.0, 300.0, 351.0, 400.0, 452.0, 504.0, 556.0, 599.0, 637.0, 676.0, 713.0)),
    _record("34", "Acer Incorporated", "Acer AW2000ht-AW170ht F1 Acer AW2000ht", "Aug 25, 2010", "Intel Xeon X5670",
          2933, 4, 24, 1775143, (205.0, 315.0, 340.0, 360.0, 387.0, 420.0, 456.0, 494.0, 529.0, 561.0, 597.0)),
    _record("61", "Dell Inc.", "PowerEdge 2970 (AMD Opteron 2356,)", "Jan 2, 2009", "AMD Opteron 2356",
          2300, 2, 8, 247542, (139.0, 164.0, 185.0, 205.0, 223.0, 236.0, 249.0, 263.0, 277.0, 292.0, 302.0)),
    _record("93", "Dell Inc.", "PowerEdge R740 (Intel Xeon Platinum 8280, 2.70 GHz)", "Apr 25, 2019",
            "Intel Xeon Platinum 8280",
          2700, 2, 56, 5811114, (49.8, 114.0, 137.0, 159.0, 182.0, 208.0, 240.0, 277.0, 319.0, 376.0, 432.0)),
    _record("123", "Fujitsu", "FUJITSU Server PRIMERGY RX1330 M4", "Dec 18, 2019", "Intel Xeon E-2288G",
          3700, 1, 8, 786578, (16.8, 20.7, 23.2, 25.6, 28.3, 31.6, 35.8, 40.1, 44.7, 50.6, 57.4)),
    _record("159", "Fujitsu", "PRIMERGY RX300 S7 (Intel Xeon E5-2660)", "Oct 3, 2012", "Intel Xeon E5-2660",
          2200, 2, 16, 1432829, (54.0, 75.3, 85.4, 95.2, 106.0, 117.0, 132.0, 153.0, 183.0, 216.0, 245.0)),
    _record("209", "Hewlett Packard Enterprise", "ProLiant DL360 Gen9", "Jan 7, 2016", "Intel Xeon E5-2699 v3",
          2300, 2, 36, 3159419, (45.0, 83.7, 101.0, 118.0, 133.0, 145.0, 162.0, 188.0, 218.0, 248.0, 276.0)),
    _record("254", "Hewlett-Packard Company", "ProLiant DL785 G6 (2.1 GHz, AMD Opteron 8425 HE)", "Sep 14, 2009",
            "AMD Opteron(r) Processor 8425 HE",
          2100, 8, 48, 1696373, (468.0, 501.0, 537.0, 582.0, 619.0, 655.0, 692.0, 728.0, 770.0, 811.0, 852.0)),
    _record("307", "Huawei Technologies Co., Ltd", "RH2288 V2", "Jun 28, 2012", "Intel Xeon E5-2640",
          2500, 2, 12, 1034209, (57.0, 80.1, 89.5, 98.0, 105.0, 114.0, 130.0, 147.0, 170.0, 203.0, 231.0)),
    _record("398", "NEC Corporation", "Express5800/E120b-1", "Sep 22, 2010", "Intel Xeon L5630",
          2133, 2, 8, 452043, (60.7, 81.8, 92.1, 98.4, 104.0, 110.0, 116.0, 122.0, 127.0, 132.0, 138.0)),
    _record("483", "Supermicro Inc.", "SuperServer SYS-620C-TN12R", "Jul 7, 2021", "Intel Xeon Platinum 8380",
          2300, 2, 80, 8769122, (101.0, 172.0, 210.0, 250.0, 289.0, 306.0, 322.0, 365.0, 419.0, 489.0, 622.0)),
)

TEST_RECORDS: tuple[SpecPowerRecord, ...] = (
    _record("197", "Hewlett Packard Enterprise", "ProLiant DL325 Gen10 Plus", "Mar 15, 2021", "EPYC 7763",
          2450, 1, 64, 6343544, (56.8, 100.0, 116.0, 130.0, 143.0, 162.0, 191.0, 211.0, 231.0, 250.0, 268.0)),
    _record("341", "IBM Corporation", "IBM System x3500 M4", "Mar 21, 2012", "Intel Xeon E5-2680",
          2700, 2, 16, 1426130, (56.6, 85.7, 94.7, 107.0, 123.0, 142.0, 169.0, 196.0, 217.0, 233.0, 247.0)),
    _record("492", "Tyan Computer Corporation Parts Built Advanced Micro Devices", "B8228Y190X2-045V4H", "Dec 4, 2012",
            "AMD Opteron 4310 EE",
          2200, 2, 8, 373385, (56.8, 68.5, 75.4, 80.5, 85.0, 89.4, 93.8, 98.2, 102.0, 106.0, 109.0)),
    _record("357", "Inspur Corporation", "Inspur NF5180M6", "Jul 29, 2021", "Intel Xeon Platinum 8352Y",
          2200, 2, 64, 6652024, (156.0, 209.0, 234.0, 258.0, 284.0, 314.0, 351.0, 410.0, 514.0, 615.0, 680.0)),
)

REIMS_DVFS = DVFSTable("REIMS", DEFAULT_FREQ_LEVELS, (140.0, 146.0, 153.0, 159.0, 167.0),
                       (228.0, 238.0, 249.0, 260.0, 272.0))
"""Grid'5000 Reims host: measured idle and full-load W at five P-states (Guerout et al. 2013), taken to be at
59.925..100% of f_max: the source gives the watts only, and the shared table assumes CloudSim-DVFS's five levels."""
BAZAR_DVFS = DVFSTable("BAZAR", DEFAULT_FREQ_LEVELS, (82.75, 82.85, 85.95, 83.10, 83.25),
                       (88.77, 92.00, 95.50, 99.45, 103.00))
"""Intel Core2 Quad Q6700 desktop, one core of four at each frequency, Plogg meter (Guerout et al. 2013)."""


@lru_cache(maxsize=1)
def default_scaling() -> FrequencyScaling:
    """The DVFS shape fitted to the Reims server's table (:data:`REIMS_DVFS`), shared by every catalogue server."""
    return REIMS_DVFS.fit()


@lru_cache(maxsize=1)
def train_servers() -> tuple[ServerType, ...]:
    """The 12 server types of the training split."""
    return tuple(r.server_type(default_scaling()) for r in TRAIN_RECORDS)


@lru_cache(maxsize=1)
def test_servers() -> tuple[ServerType, ...]:
    """The 4 held-out server types of the test split (never seen in training)."""
    return tuple(r.server_type(default_scaling()) for r in TEST_RECORDS)


def server_by_name(name: str) -> ServerType:
    """A catalogue server by name (``specpower-<server_id>``)."""
    servers = train_servers() + test_servers()
    for server in servers:
        if server.name == name:
            return server
    raise KeyError(f"no catalogue server named {name!r}; known: {[s.name for s in servers]}")
