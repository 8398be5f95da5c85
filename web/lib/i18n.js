// Every text the views show, in one dictionary: Simplified Chinese by
// default, English with `?lang=en` or the toggle. Views hold keys, never
// sentences; names of layers, properties and values come from the catalog
// (lib/catalog.js), not from here.

const DICT = {
  'zh-CN': {
    'app.title': 'onemap 应急资源一张图',
    'app.heading': '应急资源“一张图”',
    'nav.dispatch': '调度台',
    'nav.map': '一张图',
    'nav.wall': '值班大屏',
    'nav.planning': '规划研判',
    'home.summary': '态势概览',
    'home.stale': '以下数字截至 {time}',
    'wall.title': 'onemap 应急指挥值班大屏',
    'wall.heading': '应急指挥“一张图”',
    'wall.map_label': '全区态势地图',
    'wall.stale': '数据截至 {time} · 已断开，正在重连',
    'wall.stale_request': '数据截至 {time} · 读取失败：{message}',
    'wall.replay': '回放 {time}',
    'wall.replay_loading': '正在读取 {time} 的回放…',
    'wall.replay_error': '回放失败：{message}',
    'wall.replay_at': '回放时刻',
    'wall.replay_ago': '{n} 分钟前',
    'wall.replay_go': '回放',
    'wall.back_live': '返回实时',
    'wall.context_lost': '地图显示中断，正在恢复…',
    'kpi.teams': '救援队伍',
    'kpi.incidents': '未结事件',
    'kpi.shelters': '应急避难场所',
    'kpi.capacity': '容量',
    'kpi.occupancy': '已安置',
    'kpi.free': '剩余容量',
    'kpi.supplies': '储备物资（可用）',
    'kpi.reserved': '已调拨 {n}',
    'kpi.total': '共 {n}',
    'kpi.unknown': '—',
    'ticker.heading': '未结事件 · 最新在前',
    'ticker.open_for': '已持续 {d}',
    'duration.dh': '{d} 天 {h} 小时',
    'duration.hm': '{h} 小时 {m} 分',
    'duration.m': '{m} 分钟',
    'legend.heading': '图例',
    'legend.risk': '风险等级',
    'legend.teams': '队伍状态',
    'legend.severity': '事件等级',
    'legend.incidents': '事件状态',
    'lang.switch': 'English',
    'lang.switch_label': 'Switch to English',
    'status.loading': '正在加载…',
    'status.live': '实时',
    'status.stale': '数据截至 {time}，正在重连…',
    'map.layers': '图层',
    'map.layer': '图层',
    'map.cluster': '聚合',
    'map.cluster_count': '{n} 个要素',
    'map.error': '地图错误：{message}',
    'map.no_catalog': '图层目录读取失败：{message}',
    'prop.id': '编号',
    'list.sep': '、',
    'bool.yes': '是',
    'bool.no': '否',
    'unit.persons': '人',
    'unit.m': '米',
    'unit.m²': '平方米',
    'unit.cm': '厘米',
    'error.network': '无法连接服务器：{message}',
    'error.http': '请求失败（{status}）：{detail}',
    'error.not_json': '{path} 的应答不是 JSON（{type}）',
    'error.team_busy': '该队伍当前状态：{status}，所属事件 #{incident}。',
    'message.close': '关闭',
    'dispatch.title': 'onemap 应急指挥调度台',
    'dispatch.heading': '应急指挥调度台',
    'dispatch.map_label': '调度地图：点击地图报告事件',
    'login.label': '调度员令牌',
    'login.submit': '登录',
    'login.hint': '令牌只保存在本标签页，关闭即清除。未登录时只能查看。',
    'login.signed_in': '已登录调度员令牌。',
    'login.logout': '退出',
    'login.needed': '请先输入调度员令牌。',
    'login.again': '令牌无效或已吊销，请重新输入。',
    'incidents.heading': '未结事件',
    'incidents.hint': '点击地图空白处报告新事件；点击事件查看处置建议。',
    'incidents.none': '当前没有未结事件。',
    'incidents.more': '另有 {n} 起未结事件未列出。',
    'report.heading': '报告事件',
    'report.here': '在此处报告事件',
    'report.where': '位置：{lon}, {lat}',
    'report.name': '名称',
    'report.name_hint': '留空则自动命名',
    'report.type': '事件类型',
    'report.severity': '事件等级',
    'report.description': '描述',
    'report.capabilities': '所需救援能力',
    'report.supplies': '所需物资',
    'report.item': '物资',
    'report.item_pick': '选择物资…',
    'report.quantity': '数量',
    'report.add_supply': '添加物资',
    'report.remove_supply': '删除此项',
    'report.cancel': '取消',
    'report.submit': '报告',
    'report.created': '已报告事件：{name}',
    'detail.reported_at': '报告时间 {time}',
    'detail.recommendation': '推荐队伍',
    'detail.nearest': '最近的待命队伍',
    'detail.assignments': '已派遣队伍',
    'detail.supplies': '物资调拨方案',
    'detail.reservations': '已调拨物资',
    'detail.hazards': '影响范围内的危险源',
    'detail.near_shelters': '附近避难场所',
    'detail.near_cameras': '附近视频监控',
    'detail.near_enterprises': '附近企业',
    'detail.no_teams': '没有可派遣的队伍。',
    'detail.no_hazards': '不在任何危险源的疏散半径内。',
    'detail.none': '无',
    'detail.worst_eta': '全部所需能力最迟 {eta} 到场（上限 {max}）',
    'detail.assigned': '{time} 由 {by} 派遣',
    'detail.released': '{time} 解除 {why}',
    'detail.need': '需 {need} {unit}，已调拨 {got}',
    'detail.all_reserved': '已全部调拨。',
    'detail.available': '库存 {n}',
    'detail.shortfall': '缺口 {n} {unit}',
    'detail.returned': '{time} 已退回',
    'detail.radius': '疏散半径 {d}',
    'detail.where': '事件位置：{lon}, {lat}',
    'reason.covers': '具备 {caps}',
    'reason.closest': '距离最近',
    'reason.fastest': '最快到场',
    'uncovered.no_standby_team': '没有待命队伍具备此能力',
    'uncovered.beyond_max_eta': '具备此能力的队伍超出最长到场时间',
    'action.assign': '派遣',
    'action.recall': '召回',
    'action.reserve': '调拨',
    'action.return': '退回',
    'action.activate': '开始处置',
    'action.resolve': '处置结束',
    'action.cancel': '取消事件',
    'done.assigned': '已派遣 {team}',
    'done.recalled': '已召回 {team}',
    'done.reserved': '已调拨 {item}',
    'done.returned': '已退回 {item}',
    'done.status': '事件状态已改为“{status}”，解除 {n} 支队伍',
    'done.team_status': '{team} 状态已改为“{status}”',
    'eta.minutes': '约 {n} 分钟',
    'eta.none': '—',
    'distance.m': '{n} 米',
    'distance.km': '{n} 公里',
    'planning.title': 'onemap 避难场所规划研判',
    'planning.heading': '避难场所规划研判',
    'planning.map_label': '规划地图：未覆盖人口、避难场所负荷与建议选址',
    'planning.coverage': '覆盖分析',
    'planning.category': '场所类别',
    'planning.radius': '服务半径（米）',
    'planning.standard_radius': '标准值 {value} 米 · 来源：{source}',
    'planning.standard_area': '人均有效避难面积标准 {value} 平方米 · 来源：{source}',
    'planning.capacity_aware': '考虑容量（超出容纳人数的人口计为未覆盖）',
    'planning.total': '总人口',
    'planning.covered': '已覆盖',
    'planning.uncovered': '未覆盖',
    'planning.ratio': '覆盖率',
    'planning.persons': '{n} 人',
    'planning.computed_at': '覆盖分析计算于 {time}',
    'planning.recomputing': '数据已变化，正在重新计算…',
    'planning.shelters_state': '场所负荷（{n} 处）',
    'planning.layers': '规划图层',
    'planning.layer_uncovered': '未覆盖人口网格',
    'planning.layer_shelters': '避难场所负荷',
    'planning.layer_exclusions': '不宜选址区域',
    'planning.layer_sites': '建议选址及服务范围',
    'planning.state.ok': '负荷 < 80%',
    'planning.state.near': '负荷 80%–100%',
    'planning.state.over': '超出容量',
    'planning.state.excluded': '不可用（位于风险区）',
    'planning.state.unknown': '容量未知',
    'planning.uncovered_scale': '未覆盖人数',
    'planning.zone.flood_zone': '洪涝风险区',
    'planning.zone.hazard': '危险源疏散范围',
    'planning.siting': '新增场所选址',
    'planning.k': '新增数量 k',
    'planning.candidates': '候选点来源',
    'planning.candidates.grid': '人口网格中心',
    'planning.candidates.layer': '图层：{layer}',
    'planning.candidates.pins': '在地图上点选',
    'planning.pins_hint': '点击地图添加候选点（最多 {max} 个）；点击候选点可删除或设为必选/排除。',
    'planning.pins_count': '已点选 {n} 个候选点',
    'planning.pins_clear': '清除候选点',
    'planning.pins_full': '候选点已达上限 {max} 个。',
    'planning.pin': '候选点 {id}',
    'planning.pin_remove': '删除此候选点',
    'planning.site_capacity_aware': '按新场所容量计算',
    'planning.site_capacity': '新场所容纳人数',
    'planning.exact': '求解方式',
    'planning.exact.auto': '自动（规模允许时求精确解）',
    'planning.exact.true': '精确求解',
    'planning.exact.false': '启发式（贪心+交换）',
    'planning.run': '计算选址',
    'planning.running': '正在计算…',
    'planning.keep': '必选',
    'planning.exclude': '排除',
    'planning.keep_list': '必选候选点',
    'planning.exclude_list': '排除候选点',
    'planning.unpin': '取消',
    'planning.changed': '条件已改变，请重新计算。',
    'planning.stale': '数据已变化，以下选址结果可能已过时，请重新计算。',
    'planning.sites': '建议选址',
    'planning.site_rank': '第 {n} 处',
    'planning.candidate': '候选点 {id}',
    'planning.cell': '人口网格 {id}',
    'planning.gain': '新增覆盖 {n} 人',
    'planning.site_load': '安置 {load} / 容量 {capacity}',
    'planning.before_after': '选址前后对比',
    'planning.before': '选址前',
    'planning.after': '选址后',
    'planning.change': '变化',
    'planning.optimal': '已证明最优',
    'planning.gap': '未证明最优：与上界 {bound} 相差 {gap}',
    'planning.method': '方法 {method} · 用时 {ms} 毫秒',
    'planning.method.milp': '整数规划',
    'planning.method.greedy+swap': '贪心+交换',
    'planning.ruled_out': '被排除的候选点（{n}）',
    'planning.ruled_out_more': '另有 {n} 个未列出。',
    'planning.reason.flood_zone': '位于洪涝风险区',
    'planning.reason.hazard': '位于危险源疏散半径内',
    'planning.reason.excluded': '已手动排除',
    'planning.no_sites': '没有可选的候选点。',
    'planning.scenario': '保存方案',
    'planning.scenario_name': '方案名称',
    'planning.scenario_save': '保存方案',
    'planning.scenario_saved': '已保存方案：{name}',
    'planning.scenario_needs_run': '请先计算选址。',
    'planning.scenarios': '已保存的方案',
    'planning.scenarios_none': '还没有保存的方案。',
    'planning.scenario_show': '查看',
    'planning.scenario_shown': '正在显示方案“{name}”（{time} 保存）',
    'planning.report_md': '报告（Markdown）',
    'planning.report_csv': '报告（CSV）',
    'planning.report_geojson': '选址（GeoJSON）',
    'planning.token_label': '规划员令牌',
    'planning.token_hint': '保存方案需要规划员令牌；令牌只保存在本标签页，关闭即清除。',
    'planning.signed_in': '已登录规划员令牌。',
    'planning.shelter_load': '安置需求 {load} 人 / 容纳 {capacity} 人（{ratio}）',
    'planning.capacity_source.recorded': '登记容量',
    'planning.capacity_source.area': '按有效面积折算',
    'planning.area_per_person': '人均面积 {n} 平方米',
    'planning.meets_standard': '符合标准',
    'planning.below_standard': '低于标准',
    'planning.excluded': '不可用：{reason}（{detail}）',
    'planning.cell_people': '人口 {population} 人，未覆盖 {uncovered} 人',
  },
  en: {
    'app.title': 'onemap emergency resources map',
    'app.heading': 'Emergency resources “one map”',
    'nav.dispatch': 'Dispatch',
    'nav.map': 'One map',
    'nav.wall': 'Wall display',
    'nav.planning': 'Planning',
    'home.summary': 'Overview',
    'home.stale': 'Figures as of {time}',
    'wall.title': 'onemap command wall',
    'wall.heading': 'Emergency command “one map”',
    'wall.map_label': 'District situation map',
    'wall.stale': 'Data as of {time} · disconnected, reconnecting',
    'wall.stale_request': 'Data as of {time} · request failed: {message}',
    'wall.replay': 'REPLAY {time}',
    'wall.replay_loading': 'Loading the replay of {time}…',
    'wall.replay_error': 'Replay failed: {message}',
    'wall.replay_at': 'Replay moment',
    'wall.replay_ago': '{n} min ago',
    'wall.replay_go': 'Replay',
    'wall.back_live': 'Back to live',
    'wall.context_lost': 'Map display interrupted, restoring…',
    'kpi.teams': 'Rescue teams',
    'kpi.incidents': 'Open incidents',
    'kpi.shelters': 'Emergency shelters',
    'kpi.capacity': 'Capacity',
    'kpi.occupancy': 'Occupancy',
    'kpi.free': 'Free',
    'kpi.supplies': 'Depot stock (available)',
    'kpi.reserved': '{n} reserved',
    'kpi.total': '{n} in all',
    'kpi.unknown': '—',
    'ticker.heading': 'Open incidents · newest first',
    'ticker.open_for': 'open {d}',
    'duration.dh': '{d} d {h} h',
    'duration.hm': '{h} h {m} min',
    'duration.m': '{m} min',
    'legend.heading': 'Legend',
    'legend.risk': 'Risk level',
    'legend.teams': 'Team status',
    'legend.severity': 'Incident severity',
    'legend.incidents': 'Incident status',
    'item.sandbags': 'Sandbags',
    'item.life_jackets': 'Life jackets',
    'item.assault_boats': 'Assault boats',
    'item.pumps': 'Pumps',
    'item.tents': 'Tents',
    'item.masks': 'Masks',
    'item.isolation_gowns': 'Isolation gowns',
    'item.generators': 'Generators',
    'item.quilts': 'Quilts',
    'item.emergency_lights': 'Emergency lights',
    'unit.条': '',
    'unit.件': '',
    'unit.艘': '',
    'unit.台': '',
    'unit.顶': '',
    'unit.只': '',
    'unit.床': '',
    'unit.套': 'sets',
    'lang.switch': '中文',
    'lang.switch_label': '切换到中文',
    'status.loading': 'Loading…',
    'status.live': 'Live',
    'status.stale': 'Data as of {time}, reconnecting…',
    'map.layers': 'Layers',
    'map.layer': 'Layer',
    'map.cluster': 'Cluster',
    'map.cluster_count': '{n} features',
    'map.error': 'Map error: {message}',
    'map.no_catalog': 'Cannot read the layer catalog: {message}',
    'prop.id': 'Id',
    'list.sep': ', ',
    'bool.yes': 'yes',
    'bool.no': 'no',
    'unit.persons': 'persons',
    'unit.m': 'm',
    'unit.m²': 'm²',
    'unit.cm': 'cm',
    'error.network': 'Cannot reach the server: {message}',
    'error.http': 'Request failed ({status}): {detail}',
    'error.not_json': 'The answer of {path} is not JSON ({type})',
    'error.team_busy': 'The team is {status}, on incident #{incident}.',
    'message.close': 'Close',
    'dispatch.title': 'onemap dispatch console',
    'dispatch.heading': 'Dispatch console',
    'dispatch.map_label': 'Dispatch map: click the map to report an incident',
    'login.label': 'Dispatcher token',
    'login.submit': 'Sign in',
    'login.hint': 'Kept in this tab only and cleared when it closes. Without it the console is read-only.',
    'login.signed_in': 'Signed in with a dispatcher token.',
    'login.logout': 'Sign out',
    'login.needed': 'Enter a dispatcher token first.',
    'login.again': 'The token is invalid or revoked; enter it again.',
    'incidents.heading': 'Open incidents',
    'incidents.hint': 'Click an empty spot of the map to report an incident; pick one to see what to send.',
    'incidents.none': 'No open incident.',
    'incidents.more': '{n} more open incidents are not listed.',
    'report.heading': 'Report an incident',
    'report.here': 'Report an incident here',
    'report.where': 'At {lon}, {lat}',
    'report.name': 'Name',
    'report.name_hint': 'named automatically when empty',
    'report.type': 'Type',
    'report.severity': 'Severity',
    'report.description': 'Description',
    'report.capabilities': 'Required capabilities',
    'report.supplies': 'Required supplies',
    'report.item': 'Item',
    'report.item_pick': 'Pick an item…',
    'report.quantity': 'Quantity',
    'report.add_supply': 'Add an item',
    'report.remove_supply': 'Remove this item',
    'report.cancel': 'Cancel',
    'report.submit': 'Report',
    'report.created': 'Reported: {name}',
    'detail.reported_at': 'Reported {time}',
    'detail.recommendation': 'Recommended teams',
    'detail.nearest': 'Nearest standby teams',
    'detail.assignments': 'Assigned teams',
    'detail.supplies': 'Supply plan',
    'detail.reservations': 'Reserved supplies',
    'detail.hazards': 'Hazards whose radius covers it',
    'detail.near_shelters': 'Shelters nearby',
    'detail.near_cameras': 'Cameras nearby',
    'detail.near_enterprises': 'Enterprises nearby',
    'detail.no_teams': 'No team can be sent.',
    'detail.no_hazards': 'Inside no hazard’s evacuation radius.',
    'detail.none': 'None',
    'detail.worst_eta': 'Every required capability on scene within {eta} (limit {max})',
    'detail.assigned': 'assigned {time} by {by}',
    'detail.released': 'released {time} {why}',
    'detail.need': 'needs {need} {unit}, reserved {got}',
    'detail.all_reserved': 'All reserved.',
    'detail.available': '{n} in stock',
    'detail.shortfall': 'short by {n} {unit}',
    'detail.returned': 'returned {time}',
    'detail.radius': 'evacuation radius {d}',
    'detail.where': 'Incident at {lon}, {lat}',
    'reason.covers': 'covers {caps}',
    'reason.closest': 'closest',
    'reason.fastest': 'fastest',
    'uncovered.no_standby_team': 'no standby team has it',
    'uncovered.beyond_max_eta': 'the teams that have it are beyond the longest travel time',
    'action.assign': 'Assign',
    'action.recall': 'Recall',
    'action.reserve': 'Reserve',
    'action.return': 'Return',
    'action.activate': 'Activate',
    'action.resolve': 'Resolve',
    'action.cancel': 'Cancel incident',
    'done.assigned': '{team} assigned',
    'done.recalled': '{team} recalled',
    'done.reserved': '{item} reserved',
    'done.returned': '{item} returned',
    'done.status': 'Incident now “{status}”; {n} teams released',
    'done.team_status': '{team} is now “{status}”',
    'eta.minutes': '~{n} min',
    'eta.none': '—',
    'distance.m': '{n} m',
    'distance.km': '{n} km',
    'planning.title': 'onemap shelter planning',
    'planning.heading': 'Shelter planning',
    'planning.map_label': 'Planning map: uncovered population, shelter load and proposed sites',
    'planning.coverage': 'Coverage',
    'planning.category': 'Shelter category',
    'planning.radius': 'Service radius (m)',
    'planning.standard_radius': 'Standard {value} m · source: {source}',
    'planning.standard_area': 'Standard effective area per person {value} m² · source: {source}',
    'planning.capacity_aware': 'Capacity-aware (people beyond a shelter’s capacity count as uncovered)',
    'planning.total': 'Population',
    'planning.covered': 'Covered',
    'planning.uncovered': 'Uncovered',
    'planning.ratio': 'Coverage',
    'planning.persons': '{n} people',
    'planning.computed_at': 'Coverage computed at {time}',
    'planning.recomputing': 'Data changed, recomputing…',
    'planning.shelters_state': 'Shelter load ({n} shelters)',
    'planning.layers': 'Planning layers',
    'planning.layer_uncovered': 'Uncovered population cells',
    'planning.layer_shelters': 'Shelter load',
    'planning.layer_exclusions': 'Unsuitable areas',
    'planning.layer_sites': 'Proposed sites and their reach',
    'planning.state.ok': 'Load < 80 %',
    'planning.state.near': 'Load 80–100 %',
    'planning.state.over': 'Over capacity',
    'planning.state.excluded': 'Unusable (in a risk area)',
    'planning.state.unknown': 'Capacity unknown',
    'planning.uncovered_scale': 'Uncovered people',
    'planning.zone.flood_zone': 'Flood risk zone',
    'planning.zone.hazard': 'Hazard evacuation area',
    'planning.siting': 'Siting new shelters',
    'planning.k': 'New shelters k',
    'planning.candidates': 'Candidates',
    'planning.candidates.grid': 'Population cell centres',
    'planning.candidates.layer': 'Layer: {layer}',
    'planning.candidates.pins': 'Points pinned on the map',
    'planning.pins_hint': 'Click the map to pin a candidate (at most {max}); click a pin to remove it or keep/exclude it.',
    'planning.pins_count': '{n} candidates pinned',
    'planning.pins_clear': 'Clear pins',
    'planning.pins_full': 'At most {max} candidates can be pinned.',
    'planning.pin': 'Candidate {id}',
    'planning.pin_remove': 'Remove this pin',
    'planning.site_capacity_aware': 'Count the new shelters’ capacity',
    'planning.site_capacity': 'Capacity of a new shelter',
    'planning.exact': 'Solver',
    'planning.exact.auto': 'Automatic (exact when the size allows)',
    'planning.exact.true': 'Exact',
    'planning.exact.false': 'Heuristic (greedy + swap)',
    'planning.run': 'Find sites',
    'planning.running': 'Computing…',
    'planning.keep': 'Keep',
    'planning.exclude': 'Exclude',
    'planning.keep_list': 'Kept candidates',
    'planning.exclude_list': 'Excluded candidates',
    'planning.unpin': 'Undo',
    'planning.changed': 'The inputs changed; run again.',
    'planning.stale': 'The data changed; these sites may be out of date. Run again.',
    'planning.sites': 'Proposed sites',
    'planning.site_rank': 'Site {n}',
    'planning.candidate': 'Candidate {id}',
    'planning.cell': 'Population cell {id}',
    'planning.gain': '+{n} people covered',
    'planning.site_load': 'load {load} / capacity {capacity}',
    'planning.before_after': 'Before and after',
    'planning.before': 'Before',
    'planning.after': 'After',
    'planning.change': 'Change',
    'planning.optimal': 'Proven optimal',
    'planning.gap': 'Not proven optimal: {gap} from the bound {bound}',
    'planning.method': 'Method {method} · {ms} ms',
    'planning.method.milp': 'integer programming',
    'planning.method.greedy+swap': 'greedy + swap',
    'planning.ruled_out': 'Ruled-out candidates ({n})',
    'planning.ruled_out_more': '{n} more not listed.',
    'planning.reason.flood_zone': 'in a flood risk zone',
    'planning.reason.hazard': 'within a hazard’s evacuation radius',
    'planning.reason.excluded': 'excluded by hand',
    'planning.no_sites': 'No candidate could be chosen.',
    'planning.scenario': 'Save as scenario',
    'planning.scenario_name': 'Scenario name',
    'planning.scenario_save': 'Save scenario',
    'planning.scenario_saved': 'Scenario saved: {name}',
    'planning.scenario_needs_run': 'Find sites first.',
    'planning.scenarios': 'Saved scenarios',
    'planning.scenarios_none': 'No scenario saved yet.',
    'planning.scenario_show': 'Show',
    'planning.scenario_shown': 'Showing scenario “{name}” (saved {time})',
    'planning.report_md': 'Report (Markdown)',
    'planning.report_csv': 'Report (CSV)',
    'planning.report_geojson': 'Sites (GeoJSON)',
    'planning.token_label': 'Planner token',
    'planning.token_hint': 'Saving a scenario needs a planner token; it is kept in this tab only and cleared when it closes.',
    'planning.signed_in': 'Signed in with a planner token.',
    'planning.shelter_load': 'demand {load} / capacity {capacity} ({ratio})',
    'planning.capacity_source.recorded': 'recorded capacity',
    'planning.capacity_source.area': 'from the effective area',
    'planning.area_per_person': '{n} m² per person',
    'planning.meets_standard': 'meets the standard',
    'planning.below_standard': 'below the standard',
    'planning.excluded': 'Unusable: {reason} ({detail})',
    'planning.cell_people': 'population {population}, uncovered {uncovered}',
  },
};

const DEFAULT = 'zh-CN';
const KEY = 'onemap.lang';
const listeners = [];

function initial() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (asked) return asked.toLowerCase().startsWith('en') ? 'en' : DEFAULT;
  const kept = localStorage.getItem(KEY);
  return kept && DICT[kept] ? kept : DEFAULT;
}

let current = typeof location === 'undefined' ? DEFAULT : initial();

/** The language shown: `zh-CN` or `en`. */
export const lang = () => current;

/** The text of `key` with `{name}` replaced from `params`; `fallback` (or
 * the Chinese text, or the key) when the language lacks it. */
export function t(key, params = {}, fallback = undefined) {
  const text = DICT[current][key] ?? fallback ?? DICT[DEFAULT][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (params[name] === undefined ? m : String(params[name])));
}

/** Switch the language, keep it for the next visit, and redraw. */
export function setLang(next) {
  current = DICT[next] ? next : DEFAULT;
  localStorage.setItem(KEY, current);
  const url = new URL(location.href);
  if (current === DEFAULT) url.searchParams.delete('lang'); else url.searchParams.set('lang', current);
  history.replaceState(history.state, '', url);
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) { listeners.push(fn); }

/** Fill every `data-i18n` (text), `data-i18n-placeholder`,
 * `data-i18n-title` and `data-i18n-aria-label` element from the dictionary;
 * again on each language change. */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const attr of ['placeholder', 'title', 'aria-label']) {
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) node.setAttribute(attr, t(node.getAttribute(`data-i18n-${attr}`)));
  }
  if (!translatePage.listening) { translatePage.listening = true; onLangChange(() => translatePage(root)); }
}

/** The language toggle button. */
export function langToggle() {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'lang-toggle';
  const label = () => {
    button.textContent = t('lang.switch');
    button.setAttribute('aria-label', t('lang.switch_label'));
  };
  label();
  button.addEventListener('click', () => setLang(current === 'en' ? DEFAULT : 'en'));
  onLangChange(label);
  return button;
}

const locale = () => (current === 'en' ? 'en-GB' : 'zh-CN');

export function formatNumber(n) {
  const x = Number(n);
  return Number.isFinite(x) ? x.toLocaleString(locale(), { maximumFractionDigits: 2 }) : String(n);
}

/** A date-time in local time, to the minute. */
export function formatTime(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(locale(), { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
}

/** A duration in minutes as days and hours, hours and minutes, or
 * minutes (how long an incident has been open). */
export function formatDuration(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return t('duration.dh', { d, h });
  if (h > 0) return t('duration.hm', { h, m });
  return t('duration.m', { m });
}

/** A calendar date with its weekday (the wall's clock). */
export function formatDate(date) {
  return date.toLocaleDateString(locale(), { year: 'numeric', month: 'long', day: 'numeric', weekday: 'short' });
}

/** A time of day to the second (when data was last live). */
export function formatClock(date) {
  return date.toLocaleTimeString(locale(), { hour12: false });
}

/** A ratio (0.873) as a percentage (87.3 %). */
export function formatPercent(r) {
  const x = Number(r);
  if (r === null || r === undefined || !Number.isFinite(x)) return t('eta.none');
  return `${(x * 100).toLocaleString(locale(), { maximumFractionDigits: 1 })}${current === 'en' ? ' %' : '%'}`;
}

export function formatDistance(m) {
  const x = Number(m);
  if (m === null || m === undefined || !Number.isFinite(x)) return t('eta.none');
  return x < 1000 ? t('distance.m', { n: Math.round(x) }) : t('distance.km', { n: (x / 1000).toFixed(1) });
}

export function formatEta(min) {
  const x = Number(min);
  if (min === null || min === undefined || !Number.isFinite(x)) return t('eta.none');
  return t('eta.minutes', { n: Math.max(1, Math.round(x)) });
}
