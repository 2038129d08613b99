// Service tests: the real core behind an in-process gRPC server on a
// loopback port 0, driven through the generated stubs. They check the thin
// layer itself: resource names, validation, error mapping (canonical code +
// google.rpc.ErrorInfo reason in grpc-status-details-bin), pagination, and
// that rejected requests change nothing.
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/process.grpc.pb.h"
#include "server/host/registry.h"
#include "server/service/services.h"

namespace memnode::service {
namespace {

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Limits limits;
    limits.max_machines = 4;
    limits.max_request_bytes = 1 << 16;
    registry_ = std::make_unique<Registry>(limits);
    machines_ = std::make_unique<MachineServiceImpl>(*registry_);
    processes_ = std::make_unique<ProcessServiceImpl>(*registry_);
    ksm_ = std::make_unique<KsmServiceImpl>(*registry_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(machines_.get());
    b.RegisterService(processes_.get());
    b.RegisterService(ksm_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port, 0);
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                  grpc::InsecureChannelCredentials());
    m_ = v1::MachineService::NewStub(ch);
    p_ = v1::ProcessService::NewStub(ch);
    k_ = v1::KsmService::NewStub(ch);
    v1::CreateMachineRequest req;
    req.set_machine_id("t");
    req.mutable_machine()->mutable_topology()->set_nodes(2);
    req.mutable_machine()->mutable_topology()->set_blocks_per_node(2);
    req.mutable_machine()->mutable_topology()->set_pages_per_block(64);
    req.mutable_machine()->set_clock_mode(v1::CLOCK_MODE_MANUAL);
    v1::Machine out;
    grpc::ClientContext ctx;
    ASSERT_TRUE(m_->CreateMachine(&ctx, req, &out).ok());
  }
  void TearDown() override {
    server_->Shutdown();
    registry_->Shutdown();
  }

  static std::string Reason(const grpc::Status& s) {
    google::rpc::Status st;
    if (!st.ParseFromString(s.error_details()) || st.details_size() == 0) return "";
    google::rpc::ErrorInfo info;
    if (!st.details(0).UnpackTo(&info)) return "";
    EXPECT_EQ(info.domain(), "memnode.dev");
    EXPECT_EQ(st.code(), static_cast<int>(s.error_code()));
    return info.reason();
  }

  std::string Digest() {
    v1::CheckMachineRequest req;
    req.set_name("machines/t");
    v1::CheckMachineResponse r;
    grpc::ClientContext ctx;
    EXPECT_TRUE(m_->CheckMachine(&ctx, req, &r).ok());
    EXPECT_TRUE(r.ok());
    return r.state_digest();
  }

  std::string NewProcess() {
    v1::CreateProcessRequest req;
    req.set_parent("machines/t");
    v1::Process out;
    grpc::ClientContext ctx;
    EXPECT_TRUE(p_->CreateProcess(&ctx, req, &out).ok());
    return out.name();
  }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<MachineServiceImpl> machines_;
  std::unique_ptr<ProcessServiceImpl> processes_;
  std::unique_ptr<KsmServiceImpl> ksm_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::MachineService::Stub> m_;
  std::unique_ptr<v1::ProcessService::Stub> p_;
  std::unique_ptr<v1::KsmService::Stub> k_;
};

TEST_F(ServiceTest, ErrorsCarryCodeAndStableReasonAndChangeNothing) {
  std::string before = Digest();
  {
    v1::GetMachineRequest req;
    req.set_name("machines/nope");
    v1::Machine out;
    grpc::ClientContext ctx;
    grpc::Status s = m_->GetMachine(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(Reason(s), "MACHINE_NOT_FOUND");
  }
  {
    v1::GetMachineRequest req;
    req.set_name("machine/t");  // malformed
    v1::Machine out;
    grpc::ClientContext ctx;
    grpc::Status s = m_->GetMachine(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Reason(s), "INVALID_NAME");
  }
  {
    v1::GetPageFrameRequest req;
    req.set_machine("machines/t");
    req.set_pfn(256);  // the machine has 2 x 2 x 64 = 256 pages
    v1::PageFrame out;
    grpc::ClientContext ctx;
    grpc::Status s = m_->GetPageFrame(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
    EXPECT_EQ(Reason(s), "PFN_OUT_OF_RANGE");
  }
  std::string proc = NewProcess();
  before = Digest();
  {
    v1::WriteMemoryRequest req;
    req.set_name(proc);
    req.set_address(0x7f0000000000);
    req.set_data(std::string((1 << 16) + 1, 'x'));
    v1::MemoryAccessResult out;
    grpc::ClientContext ctx;
    grpc::Status s = p_->WriteMemory(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(Reason(s), "REQUEST_TOO_LARGE");
  }
  {
    v1::MadviseRequest req;
    req.set_name(proc);
    req.set_address(0x7f0000000000);
    req.set_length(4096);  // advice left unspecified
    v1::SyscallResult out;
    grpc::ClientContext ctx;
    grpc::Status s = p_->Madvise(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Reason(s), "INVALID_FIELD");
  }
  {
    v1::GetProcessRequest req;
    req.set_name("machines/t/processes/999");
    v1::Process out;
    grpc::ClientContext ctx;
    grpc::Status s = p_->GetProcess(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(Reason(s), "PROCESS_NOT_FOUND");
  }
  EXPECT_EQ(Digest(), before);
}

TEST_F(ServiceTest, EmulatedErrnoIsDataInsideOkResponses) {
  std::string proc = NewProcess();
  v1::WriteMemoryRequest req;
  req.set_name(proc);
  req.set_address(0x1000);  // outside any mapping
  req.set_data("x");
  v1::MemoryAccessResult out;
  grpc::ClientContext ctx;
  ASSERT_TRUE(p_->WriteMemory(&ctx, req, &out).ok());
  EXPECT_EQ(out.errnum(), v1::ERRNO_EFAULT);
  EXPECT_EQ(out.bytes_done(), 0u);
}

TEST_F(ServiceTest, KsmScenarioOneThroughTheService) {
  // kernel-semantics 10.1 end to end through the service layer.
  uint64_t kpfn_b = 0;
  for (int i = 0; i < 2; ++i) {
    std::string proc = NewProcess();
    v1::MmapRequest mr;
    mr.set_name(proc);
    mr.set_length(4096);
    mr.set_prot(3);
    v1::MmapResponse mo;
    grpc::ClientContext c1;
    ASSERT_TRUE(p_->Mmap(&c1, mr, &mo).ok());
    v1::WriteMemoryRequest wr;
    wr.set_name(proc);
    wr.set_address(mo.address());
    wr.set_data("identical");
    v1::MemoryAccessResult wo;
    grpc::ClientContext c2;
    ASSERT_TRUE(p_->WriteMemory(&c2, wr, &wo).ok());
    v1::MadviseRequest ar;
    ar.set_name(proc);
    ar.set_address(mo.address());
    ar.set_length(4096);
    ar.set_advice(v1::ADVICE_MERGEABLE);
    v1::SyscallResult ao;
    grpc::ClientContext c3;
    ASSERT_TRUE(p_->Madvise(&c3, ar, &ao).ok());
    v1::TranslateAddressesRequest tr;
    tr.set_name(proc);
    tr.set_address(mo.address());
    tr.set_pages(1);
    v1::TranslateAddressesResponse to;
    grpc::ClientContext c4;
    ASSERT_TRUE(p_->TranslateAddresses(&c4, tr, &to).ok());
    kpfn_b = to.pages(0).pfn();  // B (visited later) keeps its frame
  }
  v1::StepKsmRequest sr;
  sr.set_name("machines/t/ksm");
  sr.set_full_scans(1);
  v1::StepKsmResponse so;
  grpc::ClientContext c5;
  ASSERT_TRUE(k_->StepKsm(&c5, sr, &so).ok());
  EXPECT_EQ(so.ksm().pages_volatile(), 2u);  // first visits store checksums
  grpc::ClientContext c6;
  ASSERT_TRUE(k_->StepKsm(&c6, sr, &so).ok());
  EXPECT_EQ(so.ksm().pages_shared(), 1u);
  EXPECT_EQ(so.ksm().pages_sharing(), 1u);
  EXPECT_EQ(so.ksm().full_scans(), 2u);
  v1::ListStableNodesRequest lr;
  lr.set_parent("machines/t/ksm");
  v1::ListStableNodesResponse lo;
  grpc::ClientContext c7;
  ASSERT_TRUE(k_->ListStableNodes(&c7, lr, &lo).ok());
  ASSERT_EQ(lo.stable_nodes_size(), 1);
  EXPECT_EQ(lo.stable_nodes(0).kpfn(), kpfn_b);
  EXPECT_EQ(lo.stable_nodes(0).mappings_size(), 2);
}

TEST_F(ServiceTest, PaginationAndLimits) {
  for (int i = 0; i < 5; ++i) NewProcess();
  v1::ListProcessesRequest req;
  req.set_parent("machines/t");
  req.set_page_size(2);
  int seen = 0, pages = 0;
  do {
    v1::ListProcessesResponse out;
    grpc::ClientContext ctx;
    ASSERT_TRUE(p_->ListProcesses(&ctx, req, &out).ok());
    seen += out.processes_size();
    pages++;
    req.set_page_token(out.next_page_token());
  } while (!req.page_token().empty());
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(pages, 3);
  req.set_page_token("garbage");
  v1::ListProcessesResponse out;
  grpc::ClientContext ctx;
  grpc::Status s = p_->ListProcesses(&ctx, req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(s), "INVALID_PAGE_TOKEN");
  // Machine limit (4): t plus three more, then RESOURCE_EXHAUSTED.
  for (int i = 0; i < 4; ++i) {
    v1::CreateMachineRequest cr;
    cr.set_machine_id("m" + std::to_string(i));
    cr.mutable_machine()->mutable_topology()->set_pages_per_block(64);
    cr.mutable_machine()->mutable_topology()->set_blocks_per_node(1);
    v1::Machine mo;
    grpc::ClientContext c;
    grpc::Status st = m_->CreateMachine(&c, cr, &mo);
    if (i < 3) {
      EXPECT_TRUE(st.ok()) << st.error_message();
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_EQ(Reason(st), "MACHINE_LIMIT");
    }
  }
}

}  // namespace
}  // namespace memnode::service
