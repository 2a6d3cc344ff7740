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
    "metric_incidents": ("Incidents (last hour)", "事件数（近1小时）"),
    "metric_open": ("Open incidents", "未办结事件"),
    "metric_resolution": ("Resolution rate, 24 h (%)", "24小时办结率（%）"),
    "metric_ssi": ("Safety-satisfaction index", "安全感满意度指数"),
    "all_categories": ("All categories", "全部类别"),
    "open_now": ("Open now", "当前未办结"),
    "layer_grids": ("Grids", "网格"),
    "layer_gauges": ("Flood gauges", "水位站"),
    "layer_trucks": ("Muck trucks", "渣土车"),
    "layer_trails": ("Truck trails", "渣土车轨迹"),
    "layer_sites": ("Sites and zones", "工地/消纳场/禁区"),
    "gauge_normal": ("below warning", "正常"),
    "gauge_warning": ("above warning", "超警戒"),
    "gauge_danger": ("above danger", "超保证"),
    "gauge_nodata": ("no reading", "无数据"),
    "gauge_level": ("level", "水位"),
    "gauge_trend_title": ("Water level, last 24 h (m)", "近24小时水位（米）"),
    "warning_line": ("warning", "警戒"),
    "danger_line": ("danger", "保证"),
    "truck_loaded": ("loaded", "重车"),
    "truck_empty": ("empty", "空车"),
    "truck_stale": ("no ping for 10 min", "10分钟无定位"),
    "site_building": ("building site", "工地"),
    "site_disposal": ("approved disposal site", "消纳场"),
    "site_forbidden": ("forbidden zone", "禁行区"),
    "feed_incidents": ("incidents", "事件"),
    "feed_gauges": ("gauges", "水位"),
    "feed_trucks": ("trucks", "渣土车"),
    "no_values": ("none", "无"),
    "view_wall": ("Wall", "大屏"),
    "view_officer": ("My grid", "我的网格"),
    "view_leader": ("Trends", "指标趋势"),
    "sign_out": ("Sign out", "退出"),
    "not_found": ("No such page.", "页面不存在。"),
    "not_for_your_level": ("This view is not open to your level.", "您的级别无权查看此页面。"),
    # alerts (cockpit/alerts): kinds, lifecycle, escalation
    "alert_kind_flood_warning": ("Water above warning level", "超警戒水位"),
    "alert_kind_flood_danger": ("Water above danger level", "超保证水位"),
    "alert_kind_flood_rise": ("Water rising fast", "水位快速上涨"),
    "alert_kind_dumping_suspected": ("Suspected illegal dumping", "疑似偷倒渣土"),
    "alert_kind_truck_forbidden_zone": ("Truck in a forbidden zone", "渣土车驶入禁行区"),
    "alert_kind_truck_hours": ("Truck outside permitted hours", "渣土车违规时段行驶"),
    "alert_kind_truck_offline": ("Truck offline", "渣土车离线"),
    "alert_kind_rising_risk": ("Rising risk", "风险上升"),
    "alert_kind_dispute_escalation": ("Repeated disputes", "矛盾纠纷升级"),
    "alert_kind_cap": ("Official warning (CAP)", "预警信息(CAP)"),
    "alert_status_new": ("new", "待签收"),
    "alert_status_acknowledged": ("acknowledged", "已签收"),
    "alert_status_resolved": ("resolved", "已处置"),
    "alert_status_cleared": ("cleared", "已解除"),
    "alert_escalated_to": ("escalated to {level}", "已上报至{level}"),
    "alert_escalates_in": ("escalates in {m} min", "{m} 分钟后上报"),
    "alert_acknowledge": ("Acknowledge", "签收"),
    "alert_resolve": ("Resolve", "办结"),
    "alert_not_in_scope": ("This alert is not in your scope.", "该预警不在您的管辖范围内。"),
    # heatmap (layers/heat.py)
    "layer_heat": ("Incident heatmap", "事件热力图"),
    "heat_title": ("Incidents weighted by severity, {window}", "事件热力（按严重程度加权，{window}）"),
    "heat_window_15m": ("last 15 min", "近15分钟"),
    "heat_window_1h": ("last hour", "近1小时"),
    "heat_window_24h": ("last 24 h", "近24小时"),
    "heat_per_km2": ("{v} or more per km²", "每平方公里{v}及以上"),
    "heat_points": ("{n} incidents counted", "共计{n}起事件"),
    "heat_none": ("No incidents in this window", "此时段内无事件"),
    # officer view (/officer)
    "officer_area": ("My area", "我的辖区"),
    "officer_incidents_hour": ("Incidents, last hour", "近1小时事件"),
    "officer_category": ("Category", "类别"),
    "officer_all_categories": ("All categories", "全部类别"),
    "officer_status": ("Status", "状态"),
    "officer_all_statuses": ("All statuses", "全部状态"),
    "officer_range": ("Time", "时间"),
    "officer_range_1h": ("1 h", "1小时"),
    "officer_range_8h": ("8 h", "8小时"),
    "officer_range_24h": ("24 h", "24小时"),
    "officer_search": ("Search text or address", "搜索描述或地址"),
    "officer_list": ("Incidents", "事件列表"),
    "officer_n_incidents": ("{n} incidents", "{n} 件事件"),
    "officer_n_incidents_max": ("newest {n} incidents shown", "仅显示最新 {n} 件事件"),
    "officer_no_incidents": ("No incidents match.", "没有符合条件的事件。"),
    "officer_detail": ("Incident", "事件详情"),
    "officer_close": ("Close", "关闭"),
    "officer_gone": ("This incident is no longer available.", "该事件已不可查看。"),
    "officer_status_new": ("New", "新上报"),
    "officer_status_dispatched": ("Dispatched", "已派遣"),
    "officer_status_handling": ("Handling", "处置中"),
    "officer_status_resolved": ("Resolved", "已解决"),
    "officer_status_closed": ("Closed", "已办结"),
    "officer_field_id": ("ID", "编号"),
    "officer_field_category": ("Category", "类别"),
    "officer_field_status": ("Status", "状态"),
    "officer_field_severity": ("Severity", "严重程度"),
    "officer_field_ts": ("Reported", "上报时间"),
    "officer_field_updated": ("Last update", "最近更新"),
    "officer_field_grid": ("Grid", "网格"),
    "officer_field_address": ("Address", "地址"),
    "officer_field_text": ("Description", "描述"),
    "officer_field_source": ("Source", "来源"),
    "officer_field_reporter": ("Reporter", "报告人"),
    "officer_field_location": ("Location", "位置"),
    "officer_alerts": ("Alerts", "预警"),
    "officer_alerts_unavailable": ("Alerts unavailable", "预警暂不可用"),
    "officer_no_alerts": ("No open alerts.", "暂无未处理预警。"),
    "officer_acknowledge": ("Acknowledge", "确认"),
    "officer_resolve": ("Resolve", "办结"),
    "officer_comment": ("Comment", "备注"),
    "officer_alert_new": ("new", "新预警"),
    "officer_alert_acknowledged": ("acknowledged", "已确认"),
    "officer_alert_done_acknowledge": ("Alert acknowledged.", "预警已确认。"),
    "officer_alert_done_resolve": ("Alert resolved.", "预警已办结。"),
    "officer_alert_refused": ("Not allowed for this alert.", "无权处理该预警。"),
    "officer_alert_failed": (
        "The alert could not be updated; it may have changed.", "预警未能更新，可能已有变化。",
    ),
    "officer_severity_info": ("info", "提示"),
    "officer_severity_minor": ("minor", "轻微"),
    "officer_severity_moderate": ("moderate", "中等"),
    "officer_severity_severe": ("severe", "严重"),
    "officer_severity_extreme": ("extreme", "特别严重"),
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
