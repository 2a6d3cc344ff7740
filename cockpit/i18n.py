"""User-facing labels in English and Simplified Chinese: the one translation table."""

from __future__ import annotations

from cockpit.contract import CATEGORIES

LABELS: dict[str, tuple[str, str]] = {
    "app_title": ("City operations cockpit", "城市运行驾驶舱"),
    "incidents_last_hour": ("Incidents, last hour", "近1小时事件"),
    "legend_title": ("Incidents per grid, last hour", "网格近1小时事件数"),
    "updated_ago": ("updated {s} s ago", "{s} 秒前更新"),
    "stale_since": ("stale since {t}", "自 {t} 起未更新"),
    "no_data": ("no data yet", "暂无数据"),
    "grids": ("grids", "网格"),
    "count": ("incidents", "事件"),
    "user": ("Signed in as", "当前用户"),
    "scope": ("Scope", "范围"),
    "language": ("中文", "English"),
    "level_city": ("city", "市"),
    "level_district": ("district", "区"),
    "level_street": ("street", "街道"),
    "level_community": ("community", "社区"),
    "level_grid": ("grid", "网格"),
    "view_operations": ("Map", "地图"),
    "view_wall": ("Wall", "大屏"),
    "view_officer": ("My grid", "我的网格"),
    "view_leader": ("Trends", "指标趋势"),
    "sign_out": ("Sign out", "退出"),
    "not_found": ("No such page.", "页面不存在。"),
    "not_for_your_level": ("This view is not open to your level.", "您的级别无权查看此页面。"),
}


def t(key: str, lang: str, **values: object) -> str:
    """The label ``key`` in ``lang`` ("en" or "zh-CN"), with ``{name}`` values filled in."""
    en, zh = LABELS[key]
    text = zh if lang == "zh-CN" else en
    return text.format(**values) if values else text


def category_label(category: str, lang: str) -> str:
    en, zh = CATEGORIES[category]
    return zh if lang == "zh-CN" else en


def tooltip_labels(lang: str) -> dict[str, str]:
    """The words the map's tooltip needs in the browser (sent once with the layout)."""
    return {"count": t("count", lang), "lang": lang}


def badge_labels(lang: str) -> dict[str, str]:
    """Templates for the data-age badge, filled in by the browser every second."""
    return {k: t(k, lang) for k in ("updated_ago", "stale_since", "no_data")}
