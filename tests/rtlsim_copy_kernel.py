"""TEST DATA ONLY: a tiny word-copy RTL kernel with the port contract of ``sat_kernel``.

It is NOT the accelerator. It exists so the Verilator harness (gen/rtlsim.py, the memory model,
the AXI4-Lite master, the C API) can be tested on its own: it has the control registers of
regmap.json (ap_start/ap_done clear-on-read/ap_idle/ap_ready, GIE, IER, ISR toggle-on-write,
``interrupt``), every argument register at its regmap offset, the read-only ``status`` register
with its ap_vld flag, and one AXI4 master per regmap bundle. On ap_start it copies ``k`` words
from the first pointer argument (``a_val``, first bundle) to the pointer named ``c``, in INCR
bursts of at most 256 beats that never cross 4 KiB; a pointer that is not word-aligned ends the
job with status ``misaligned`` without touching memory, a mode not in regmap ``modes`` with
``bad_mode``.

Deliberate misbehaviour, selected by the ``cols`` register, so the memory model's protocol
checks can be seen to fire: 1001 ignores the 4 KiB rule, 1002 drives WLAST one beat early,
1003 drops ARVALID for one cycle when a burst's first ARVALID cycle got no ARREADY, 1004 never finishes (timeouts).
"""
from __future__ import annotations

MISBEHAVE = {"cross_4k": 1001, "early_wlast": 1002, "drop_arvalid": 1003, "hang": 1004}


def copy_kernel_sv(regmap: dict) -> str:
    word_bits = regmap["abi"]["word_bits"]
    wb = word_bits // 8
    lg = (wb - 1).bit_length()
    args = {a["name"]: a for a in regmap["args"]}
    ptrs = [a for a in regmap["args"] if a["kind"] == "ptr"]
    src, dst = ptrs[0], args["c"]
    status = args["status"]
    nregs = (regmap["address_range"] + 3) // 4
    aw = max(4, (regmap["address_range"] - 1).bit_length())
    ctrl = regmap["control"]["bits"]
    modes = sorted(set(regmap["modes"].values()))
    sb = regmap["status_bits"]

    ports = []
    for p in ptrs:
        b = p["bundle"]
        ports += [
            f"output logic m_axi_{b}_arvalid", f"input logic m_axi_{b}_arready", f"output logic [63:0] m_axi_{b}_araddr",
            f"output logic [7:0] m_axi_{b}_arlen", f"output logic [2:0] m_axi_{b}_arsize",
            f"output logic [1:0] m_axi_{b}_arburst", f"input logic m_axi_{b}_rvalid", f"output logic m_axi_{b}_rready",
            f"input logic [{word_bits - 1}:0] m_axi_{b}_rdata", f"input logic [1:0] m_axi_{b}_rresp",
            f"input logic m_axi_{b}_rlast", f"output logic m_axi_{b}_awvalid", f"input logic m_axi_{b}_awready",
            f"output logic [63:0] m_axi_{b}_awaddr", f"output logic [7:0] m_axi_{b}_awlen",
            f"output logic [2:0] m_axi_{b}_awsize", f"output logic [1:0] m_axi_{b}_awburst",
            f"output logic m_axi_{b}_wvalid", f"input logic m_axi_{b}_wready",
            f"output logic [{word_bits - 1}:0] m_axi_{b}_wdata", f"output logic [{wb - 1}:0] m_axi_{b}_wstrb",
            f"output logic m_axi_{b}_wlast", f"input logic m_axi_{b}_bvalid", f"output logic m_axi_{b}_bready",
            f"input logic [1:0] m_axi_{b}_bresp",
        ]
    ties = []
    for p in ptrs:
        b = p["bundle"]
        if b in (src["bundle"], dst["bundle"]):
            continue
        for sig in ("arvalid", "araddr", "arlen", "arsize", "arburst", "rready", "awvalid", "awaddr", "awlen",
                    "awsize", "awburst", "wvalid", "wdata", "wstrb", "wlast", "bready"):
            ties.append(f"  assign m_axi_{b}_{sig} = '0;")
    s, d = src["bundle"], dst["bundle"]
    if s == d:
        raise ValueError("copy kernel needs two different bundles")
    mode_ok = " || ".join(f"reg_mode == 32'd{v}" for v in modes)
    port_text = ",\n  ".join(["input logic ap_clk", "input logic ap_rst_n", "output logic interrupt",
                              "input logic s_axi_control_awvalid", "output logic s_axi_control_awready",
                              f"input logic [{aw - 1}:0] s_axi_control_awaddr", "input logic s_axi_control_wvalid",
                              "output logic s_axi_control_wready", "input logic [31:0] s_axi_control_wdata",
                              "input logic [3:0] s_axi_control_wstrb", "output logic s_axi_control_bvalid",
                              "input logic s_axi_control_bready", "output logic [1:0] s_axi_control_bresp",
                              "input logic s_axi_control_arvalid", "output logic s_axi_control_arready",
                              f"input logic [{aw - 1}:0] s_axi_control_araddr", "output logic s_axi_control_rvalid",
                              "input logic s_axi_control_rready", "output logic [31:0] s_axi_control_rdata",
                              "output logic [1:0] s_axi_control_rresp", *ports])
    return f"""// TEST DATA ONLY (tests/rtlsim_copy_kernel.py): a word-copy kernel with sat_kernel's ports and
// register map, used to test the Verilator harness. It is not the accelerator.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off WIDTHTRUNC */
/* verilator lint_off WIDTHEXPAND */
module copy_kernel (
  {port_text}
);
  localparam int WB = {wb};
  logic [31:0] regs [0:{nregs - 1}];
  logic ap_start, ap_done, ap_idle, gie, status_vld;
  logic [1:0] ier, isr;
  logic [31:0] status_q;
  wire [31:0] reg_mode = regs[{args['mode']['offset'] // 4}];
  wire [31:0] reg_k = regs[{args['k']['offset'] // 4}];
  wire [31:0] reg_cols = regs[{args['cols']['offset'] // 4}];
  wire [63:0] src_ptr = {{regs[{src['offset'] // 4 + 1}], regs[{src['offset'] // 4}]}};
  wire [63:0] dst_ptr = {{regs[{dst['offset'] // 4 + 1}], regs[{dst['offset'] // 4}]}};

  // ---- AXI4-Lite slave ----
  logic bvalid_q, rvalid_q;
  logic [31:0] rdata_q;
  wire wr = s_axi_control_awvalid && s_axi_control_wvalid && !bvalid_q;
  wire rd = s_axi_control_arvalid && !rvalid_q;
  assign s_axi_control_awready = wr;
  assign s_axi_control_wready = wr;
  assign s_axi_control_bvalid = bvalid_q;
  assign s_axi_control_bresp = 2'b00;
  assign s_axi_control_arready = rd;
  assign s_axi_control_rvalid = rvalid_q;
  assign s_axi_control_rdata = rdata_q;
  assign s_axi_control_rresp = 2'b00;
  assign interrupt = gie && (isr != 2'b00);

  // ---- copy engine ----
  typedef enum logic [2:0] {{IDLE, CHECK, RADDR, RDATA, WADDR, WDATA, WRESP, HANG}} st_t;
  st_t st;
  logic [63:0] sa, da;
  logic [31:0] left;
  logic [8:0] blen, cnt;
  logic [{word_bits - 1}:0] buffer [0:255];
  logic done_pulse, dropped;
  wire [12:0] s_room = 13'd4096 - {{1'b0, sa[11:0]}};
  wire [12:0] d_room = 13'd4096 - {{1'b0, da[11:0]}};
  wire [12:0] s_words = s_room >> {lg};
  wire [12:0] d_words = d_room >> {lg};
  wire [31:0] lim0 = (left > 32'd256) ? 32'd256 : left;
  wire [31:0] lim1 = (reg_cols == 32'd{MISBEHAVE['cross_4k']}) ? lim0 : ((lim0 > s_words) ? s_words : lim0);
  wire [31:0] lim2 = (reg_cols == 32'd{MISBEHAVE['cross_4k']}) ? lim1 : ((lim1 > d_words) ? d_words : lim1);

  assign m_axi_{s}_arvalid = (st == RADDR) && !(reg_cols == 32'd{MISBEHAVE['drop_arvalid']} && !dropped && cnt == 9'd0);
  assign m_axi_{s}_araddr = sa;
  assign m_axi_{s}_arlen = blen - 9'd1;
  assign m_axi_{s}_arsize = 3'd{lg};
  assign m_axi_{s}_arburst = 2'b01;
  assign m_axi_{s}_rready = (st == RDATA);
  assign m_axi_{s}_awvalid = '0; assign m_axi_{s}_awaddr = '0; assign m_axi_{s}_awlen = '0;
  assign m_axi_{s}_awsize = '0; assign m_axi_{s}_awburst = '0; assign m_axi_{s}_wvalid = '0;
  assign m_axi_{s}_wdata = '0; assign m_axi_{s}_wstrb = '0; assign m_axi_{s}_wlast = '0; assign m_axi_{s}_bready = '0;
  assign m_axi_{d}_arvalid = '0; assign m_axi_{d}_araddr = '0; assign m_axi_{d}_arlen = '0;
  assign m_axi_{d}_arsize = '0; assign m_axi_{d}_arburst = '0; assign m_axi_{d}_rready = '0;
  assign m_axi_{d}_awvalid = (st == WADDR);
  assign m_axi_{d}_awaddr = da;
  assign m_axi_{d}_awlen = blen - 9'd1;
  assign m_axi_{d}_awsize = 3'd{lg};
  assign m_axi_{d}_awburst = 2'b01;
  assign m_axi_{d}_wvalid = (st == WDATA);
  assign m_axi_{d}_wdata = buffer[cnt[7:0]];
  assign m_axi_{d}_wstrb = '1;
  assign m_axi_{d}_wlast = (reg_cols == 32'd{MISBEHAVE['early_wlast']}) ? (cnt + 9'd2 == blen) : (cnt + 9'd1 == blen);
  assign m_axi_{d}_bready = (st == WRESP);
{chr(10).join(ties)}

  always_ff @(posedge ap_clk) begin
    if (!ap_rst_n) begin
      st <= IDLE; ap_start <= 1'b0; ap_done <= 1'b0; ap_idle <= 1'b1; gie <= 1'b0; ier <= '0; isr <= '0;
      status_q <= '0; status_vld <= 1'b0; bvalid_q <= 1'b0; rvalid_q <= 1'b0; rdata_q <= '0; done_pulse <= 1'b0;
      cnt <= '0; blen <= '0; left <= '0; sa <= '0; da <= '0; dropped <= 1'b0;
      for (int i = 0; i < {nregs}; i++) regs[i] <= '0;
    end else begin
      done_pulse <= 1'b0;
      // register writes
      if (wr) begin
        bvalid_q <= 1'b1;
        case (s_axi_control_awaddr)
          {aw}'h{regmap['control']['offset']:x}: if (s_axi_control_wdata[{ctrl['ap_start']}] && ap_idle) begin ap_start <= 1'b1; end
          {aw}'h{regmap['gie']['offset']:x}: gie <= s_axi_control_wdata[0];
          {aw}'h{regmap['ier']['offset']:x}: ier <= s_axi_control_wdata[1:0];
          {aw}'h{regmap['isr']['offset']:x}: isr <= isr ^ s_axi_control_wdata[1:0];
          default: regs[s_axi_control_awaddr[{aw - 1}:2]] <= s_axi_control_wdata;
        endcase
      end
      if (bvalid_q && s_axi_control_bready) bvalid_q <= 1'b0;
      // register reads (ap_done and status ap_vld clear on read)
      if (rd) begin
        rvalid_q <= 1'b1;
        case (s_axi_control_araddr)
          {aw}'h{regmap['control']['offset']:x}: begin
            rdata_q <= (32'(ap_idle) << {ctrl['ap_ready']}) | (32'(ap_idle) << {ctrl['ap_idle']}) | (32'(ap_done) << {ctrl['ap_done']}) | (32'(ap_start) << {ctrl['ap_start']});
            ap_done <= 1'b0;
          end
          {aw}'h{regmap['gie']['offset']:x}: rdata_q <= {{31'd0, gie}};
          {aw}'h{regmap['ier']['offset']:x}: rdata_q <= {{30'd0, ier}};
          {aw}'h{regmap['isr']['offset']:x}: rdata_q <= {{30'd0, isr}};
          {aw}'h{status['offset']:x}: rdata_q <= status_q;
          {aw}'h{status['vld_offset']:x}: begin rdata_q <= {{31'd0, status_vld}}; status_vld <= 1'b0; end
          default: rdata_q <= regs[s_axi_control_araddr[{aw - 1}:2]];
        endcase
      end
      if (rvalid_q && s_axi_control_rready) rvalid_q <= 1'b0;
      // the job
      case (st)
        IDLE: if (ap_start) begin
          ap_start <= 1'b0; ap_idle <= 1'b0; st <= CHECK; sa <= src_ptr; da <= dst_ptr; left <= reg_k; dropped <= 1'b0;
        end
        CHECK: begin
          if (reg_cols == 32'd{MISBEHAVE['hang']}) st <= HANG;
          else if (!({mode_ok})) begin status_q <= 32'd{1 << sb['bad_mode']}; done_pulse <= 1'b1; st <= IDLE; end
          else if (sa[{lg - 1}:0] != '0 || da[{lg - 1}:0] != '0) begin
            status_q <= 32'd{1 << sb['misaligned']}; done_pulse <= 1'b1; st <= IDLE;
          end else if (left == 0) begin status_q <= '0; done_pulse <= 1'b1; st <= IDLE; end
          else begin status_q <= '0; blen <= lim2[8:0]; cnt <= 9'd1; dropped <= 1'b0; st <= RADDR; end
        end
        RADDR: begin
          if (cnt == 9'd0) dropped <= 1'b1;
          cnt <= 9'd0;
          if (m_axi_{s}_arvalid && m_axi_{s}_arready) st <= RDATA;
        end
        RDATA: if (m_axi_{s}_rvalid) begin
          buffer[cnt[7:0]] <= m_axi_{s}_rdata;
          cnt <= cnt + 9'd1;
          if (cnt + 9'd1 == blen) begin cnt <= 9'd0; st <= WADDR; end
        end
        WADDR: if (m_axi_{d}_awready) st <= WDATA;
        WDATA: if (m_axi_{d}_wready) begin
          cnt <= cnt + 9'd1;
          if (cnt + 9'd1 == blen) st <= WRESP;
        end
        WRESP: if (m_axi_{d}_bvalid) begin
          sa <= sa + 64'(blen) * WB; da <= da + 64'(blen) * WB; left <= left - 32'(blen);
          if (left == 32'(blen)) begin done_pulse <= 1'b1; st <= IDLE; end
          else st <= CHECK;
        end
        default: ;
      endcase
      if (done_pulse) begin
        ap_done <= 1'b1; ap_idle <= 1'b1; status_vld <= 1'b1;
        isr <= isr | (ier & 2'b11);
      end
    end
  end
endmodule
"""
